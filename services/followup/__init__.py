"""Followup: satisfaction revisits after a resolution; a low score reopens the case."""
