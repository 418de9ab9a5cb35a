import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_login_lands_on_the_labeler_home(page, login):
    login("alice")
    expect(page).to_have_url(re.compile(r"/labeler$"))
    expect(page.get_by_role("heading", name="Hello, alice")).to_be_visible()


def test_wrong_password_shows_an_error(page, login):
    login("alice", "not-the-password")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    expect(page.get_by_label("Username")).to_have_value("alice")
