import pytest

pytestmark = pytest.mark.integration


def sample_feedback(**overrides):
    feedback = {
        "store_id": "SH-XH-001",
        "channel": "hotline",
        "customer": {"name": "刘女士", "phone": "13812345678", "email": "liu@example.com"},
        "content": "做完面部护理后脸上红肿刺痛,美容师手法太重",
        "occurred_at": "2026-11-23T15:00:00+08:00",
    }
    feedback.update(overrides)
    return feedback


@pytest.fixture
def feedback():
    return sample_feedback
