"""Every HTTP call of the integration tests is made as a store manager of SH-XH-001
(may do everything in that store and sees contact details) unless a test says
otherwise: authentication and access have their own tests (test_access.py)."""
import pytest

DEFAULT_STAFF = "sh-xh-mg"


@pytest.fixture
def web_session(web_session, token_keys):
    web_session.headers.update(token_keys.headers(DEFAULT_STAFF))
    return web_session
