"""Intake: every channel's feedback becomes a case with a unique number and an acknowledgement."""
