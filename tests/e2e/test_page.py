"""The mail settings page in a real headless Chromium (Debian's), against the daemon and a real
Dovecot: the help page's flow as an owner, mail appearing live, and what an employee is not
offered. Screenshots of each screen go to test-artifacts/screens/ (CI keeps them)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Dialog, Page, async_playwright, expect

from prostoy_mail.auth.password_hashes import hash_password
from prostoy_mail.config.load import load_config
from prostoy_mail.daemon import Daemon
from prostoy_mail.store.ports import CommentTarget, MessageRecord
from prostoy_mail.store.sqlite import SqliteStore
from tests.config_factory import LOOPBACK_ANY_PORT, QUICK_FETCH, config_text
from tests.dovecot import Dovecot
from tests.waiting import until

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
SCREENS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screens"
USERS = {"box@example.org": "right-password", "clerk@example.org": "clerk-mail-password"}
PASSWORDS = {"boss": "boss-password", "clerk": "clerk-password"}
# As the environment's probe found: without the background-networking flags Chromium keeps
# trying hosts this closed network refuses; as root it needs --no-sandbox.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@dataclass
class Site:
    url: str
    daemon: Daemon
    dovecot: Dovecot


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot(USERS).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        raise RuntimeError("chromium is not installed: apt-get install chromium (scripts/setup --test does)")
    SCREENS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def site(tmp_path: Path, dovecot: Dovecot) -> AsyncIterator[Site]:
    config = tmp_path / "prostoy-mail.toml"
    config.write_text(config_text(listen={"http": LOOPBACK_ANY_PORT}, smtp={"workers": 0},
                                  fetch={**QUICK_FETCH, "private_servers": True}))  # (Dovecot is on loopback)
    store = SqliteStore(tmp_path / "store.db")
    acme = store.add_organisation("acme", "Acme").id
    with store.acting_for(acme):
        store.add_user("boss", "Борис", hash_password(PASSWORDS["boss"]), is_owner=True)
        store.add_user("clerk", "Клерк", hash_password(PASSWORDS["clerk"]), is_owner=False)
        store.add_project("Sales")
        store.add_task("Sales", "Invoices")
        archive = store.add_task("Sales", "Archive").id
        for number in range(60):
            store.store_message(MessageRecord(raw=f"Subject: old {number}\r\n\r\nx\r\n".encode(), direction="in",
                                              source="smtp", subject=f"old {number}"), [CommentTarget(archive, ("r",))])
    store.replace_org_entries(acme, {
        "servers": [{"name": "dovecot.test", "imap": f"127.0.0.1:{dovecot.ports['imap']}", "ssl": False,
                     "verify_certificate": False}],
        "gateways": [{"email": "clerk@example.org", "server": "dovecot.test", "password": USERS["clerk@example.org"],
                      "personal_for": "clerk"}],
        "rules": [{"name": "clerks-news", "gateway": "clerk@example.org", "subject": ["news"], "action": "comment",
                   "task": "Sales/Invoices", "editable_by_owner": True},
                  {"name": "spam", "subject": ["casino"], "action": "ignore"}]})
    store.close()
    daemon = Daemon(load_config(config))
    await daemon.start()
    try:
        yield Site(f"http://127.0.0.1:{daemon.bound_port('http')}/", daemon, dovecot)
    finally:
        await daemon.stop()


def watch(page: Page) -> list[str]:
    """The page's script errors, as they happen (a test ends asserting there were none)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


async def signed_in(browser: Browser, site: Site, login: str, locale: str = "ru-RU") -> Page:
    page = await (await browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})).new_page()
    page.errors = watch(page)  # type: ignore[attr-defined]
    russian = locale.startswith("ru")
    await page.goto(site.url)
    await page.get_by_label("Логин" if russian else "Login").fill(login)
    await page.get_by_label("Пароль" if russian else "Password").fill(PASSWORDS[login])
    await page.get_by_role("button", name="Войти" if russian else "Sign in").click()
    await expect(page.get_by_role("tab", name="Почтовые шлюзы" if russian else "Mail gateways")).to_be_visible()
    return page


async def test_the_help_pages_flow_in_a_browser(browser: Browser, site: Site) -> None:
    page = await (await browser.new_context(locale="ru-RU", viewport={"width": 1280, "height": 900})).new_page()
    errors = watch(page)
    await page.goto(site.url)
    await expect(page.get_by_role("button", name="Войти")).to_be_visible()
    await page.screenshot(path=SCREENS / "login.png")
    await page.get_by_label("Логин").fill("boss")
    await page.get_by_label("Пароль").fill("wrong")
    await page.get_by_role("button", name="Войти").click()
    await expect(page.get_by_role("alert")).to_contain_text("Неверный логин или пароль")
    await page.get_by_label("Пароль").fill(PASSWORDS["boss"])
    await page.get_by_role("button", name="Войти").click()

    # "Создать сервер": every field of the help page
    await page.get_by_role("button", name="Создать сервер").click()
    form = page.get_by_role("dialog")
    await form.get_by_label("Название").fill("imap.dovecot.test")
    await form.get_by_label("Сервер входящей почты").fill("127.0.0.1")
    await form.get_by_label("Порт").first.fill(str(site.dovecot.ports["imap"]))
    await form.get_by_label("SMTP-сервер").fill("127.0.0.1")
    await form.get_by_label("Порт").last.fill("9")
    await form.get_by_label("Проверять подлинность сертификата").uncheck()
    await form.get_by_label("Использовать SSL").uncheck()
    await form.get_by_label("TLS").check()
    await page.screenshot(path=SCREENS / "server-form.png")
    await form.get_by_role("button", name="Сохранить").click()
    server = page.locator('[data-server="imap.dovecot.test"]')
    await expect(server.locator("[data-endpoints]")).to_have_text(
        f"IMAP 127.0.0.1:{site.dovecot.ports['imap']} · SMTP 127.0.0.1:9")
    await server.get_by_role("button", name="Редактировать").click()  # ("Редактировать": a server's SMTP port)
    form = page.get_by_role("dialog")
    await expect(form.get_by_label("Название")).to_be_disabled()
    await form.get_by_label("Порт").last.fill("10")
    await form.get_by_role("button", name="Сохранить").click()
    await expect(server.locator("[data-endpoints]")).to_contain_text("SMTP 127.0.0.1:10")
    said: list[str] = []  # ("Удалить «dovecot.test»?", then why not: the clerk's gateway uses it)

    async def answer(dialog: Dialog) -> None:
        said.append(dialog.message)
        await dialog.accept()

    page.on("dialog", answer)
    await page.locator('[data-server="dovecot.test"]').get_by_role("button", name="Удалить").first.click()
    await until(lambda: len(said) == 2)
    page.remove_listener("dialog", answer)
    assert said[0] == "Удалить «dovecot.test»?" and "Настройки были бы неверны" in said[1], said
    assert "gateways[1].server" in said[1], said  # (the gateway that uses it)
    await expect(page.locator('[data-server="dovecot.test"]')).to_be_visible()

    # "Создать шлюз": Test with a wrong password (the login step fails), then the right one
    await page.get_by_role("button", name="Создать шлюз").click()
    form = page.get_by_role("dialog")
    await form.get_by_label("Сервер", exact=True).select_option("imap.dovecot.test")
    await form.get_by_label("E-mail").fill("box@example.org")
    await form.get_by_label("Пароль", exact=True).fill("wrong-password")
    await form.get_by_label("Удалять входящие письма с почтового сервера при удалении в программе").check()
    await form.get_by_role("button", name="Тест").click()
    # (Dovecot answers a wrong password after its auth_failure_delay, 2 s)
    await expect(form.locator('[data-step="imap:login"]')).to_have_attribute("data-ok", "false", timeout=20_000)
    await expect(form.locator("[data-result]")).to_have_text("Проверка не пройдена")
    await expect(form.locator('[data-step="imap:connect"]')).to_have_attribute("data-ok", "true")
    await page.screenshot(path=SCREENS / "gateway-test-failed.png")
    await form.get_by_label("Пароль", exact=True).fill(USERS["box@example.org"])
    await form.get_by_role("button", name="Тест").click()
    await expect(form.locator('[data-step="imap:login"]')).to_have_attribute("data-ok", "true", timeout=20_000)
    await expect(form.locator('[data-step="smtp:connect"]')).to_have_attribute("data-ok", "false")  # (port 9)
    await form.get_by_role("button", name="Сохранить").click()
    gateway = page.locator('[data-gateway="box@example.org"]')
    await expect(gateway.locator("[data-state]")).to_have_attribute("data-state", "idle", timeout=20_000)  # (live)
    await page.screenshot(path=SCREENS / "gateways.png")
    await page.get_by_label("Скрыть сервера без почтовых ящиков").check()
    await expect(page.locator('[data-server="mail.ru"]')).to_have_count(0)  # (a preset no gateway uses)
    await expect(page.locator('[data-server="imap.dovecot.test"]')).to_be_visible()
    await page.get_by_label("Скрыть сервера без почтовых ящиков").uncheck()
    await expect(page.locator('[data-server="mail.ru"]')).to_be_visible()

    # "Редактировать": a new login needs the password again, said next to the password
    await gateway.get_by_role("button", name="Редактировать").click()
    form = page.get_by_role("dialog")
    await form.get_by_label("Логин", exact=True).fill("someone-else")
    await form.get_by_role("button", name="Сохранить").click()
    await expect(form.locator('[data-error-for="password"]')).to_contain_text("Неверное значение")
    await expect(form.locator('[data-error-for="password"]')).to_contain_text("needs the password again")
    await form.get_by_role("button", name="Отмена").click()
    await expect(page.get_by_role("dialog")).to_have_count(0)

    # "Prostoy.biz": a problem is shown next to its field, in the page's language
    await page.get_by_role("button", name="Prostoy.biz").click()
    form = page.get_by_role("dialog")
    await form.get_by_label("Логин почтового ящика").fill("bad login!")
    await form.get_by_role("button", name="Сохранить").click()
    error = form.locator('[data-error-for="login"]')
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("Неверное значение")
    await form.get_by_label("Логин почтового ящика").fill("orders")
    await form.get_by_role("button", name="Сохранить").click()
    await expect(page.locator('[data-mailbox="orders"]')).to_contain_text("orders@example.test")

    # "Создать правило", ordered above the others; the dry run on a pasted message
    await page.get_by_role("tab", name="Правила").click()
    await page.get_by_role("button", name="Создать правило").click()
    form = page.get_by_role("dialog")
    await form.get_by_label("Название правила").fill("invoices")
    await form.get_by_label("Правило для").select_option("gateway:box@example.org")
    await form.get_by_label("Заголовок").fill("invoice, счёт")
    await form.get_by_label("Добавить комментарий").check()
    await form.get_by_label("Задача").select_option("Sales/Invoices")
    await form.get_by_label("Назначить").select_option("clerk")
    await page.screenshot(path=SCREENS / "rule-form.png")
    await form.get_by_role("button", name="Сохранить").click()
    row = page.locator('[data-rule="invoices"]')
    await expect(row).to_contain_text("invoice, счёт")
    await row.get_by_role("button", name="Выше: invoices").click()
    await expect(page.locator("[data-rule]").nth(1)).to_have_attribute("data-rule", "invoices")
    await page.get_by_role("button", name="Выше: invoices").click()
    await expect(page.locator("[data-rule]").first).to_have_attribute("data-rule", "invoices")
    await page.get_by_label("Вставьте письмо целиком").fill("From: a@client.ru\nSubject: invoice 12\n\npay\n")
    await page.get_by_label("Пришло через").select_option("gateway:box@example.org")
    await page.get_by_role("button", name="Проверить").click()
    await expect(page.locator('[data-check="invoices"]')).to_have_attribute("data-matched", "true")
    await expect(page.locator("[data-lands-in]")).to_have_attribute("data-lands-in", "Sales/Invoices")
    await page.screenshot(path=SCREENS / "rules.png")

    # the task: mail delivered to Dovecot appears without reloading the page
    await page.get_by_role("tab", name="Задачи").click()
    await page.get_by_role("button", name="Sales / Invoices").click()
    await expect(page.get_by_text("новые письма появляются сами")).to_be_visible()
    await asyncio.sleep(0.2)  # (the page's stream is open: it was opened at sign-in)
    appended = time.monotonic()
    await asyncio.to_thread(site.dovecot.append, "box@example.org",
                            "From: Клиент <client@client.ru>\r\nSubject: invoice 77\r\nContent-Type: text/plain; "
                            "charset=utf-8\r\n\r\nОплатите, пожалуйста\r\n".encode())
    comment = page.locator("[data-comment]").filter(has_text="invoice 77")
    await expect(comment).to_be_visible(timeout=2_000)
    print(f"from Dovecot's APPEND to the comment on the page: {time.monotonic() - appended:.3f} s")
    await expect(comment).to_contain_text("Оплатите, пожалуйста")
    await page.screenshot(path=SCREENS / "task.png")
    page.on("dialog", lambda confirm: confirm.accept())  # (Playwright awaits what a handler returns)
    await comment.get_by_role("button", name="Удалить комментарий").click()
    await expect(comment).to_have_count(0)

    # English, chosen with the switch
    await page.get_by_role("button", name="English").click()
    await page.get_by_role("tab", name="Mail gateways").click()
    await expect(page.get_by_role("button", name="Create gateway")).to_be_visible()
    assert errors == []


async def test_an_employee_is_offered_only_what_the_api_lets_them_do(browser: Browser, site: Site) -> None:
    page = await signed_in(browser, site, "clerk")
    for owners_only in ("Создать сервер", "Создать шлюз", "Prostoy.biz", "Удалить"):
        await expect(page.get_by_role("button", name=owners_only)).to_have_count(0)
    own = page.locator('[data-gateway="clerk@example.org"]')
    await expect(own.get_by_role("button", name="Редактировать")).to_be_visible()
    await own.get_by_role("button", name="Редактировать").click()
    form = page.get_by_role("dialog")
    for fixed in ("Сервер", "Логин"):  # (a new server or login is the owner's to give)
        await expect(form.get_by_label(fixed, exact=True)).to_be_disabled()
    await form.get_by_label("Отмечать прочитанными входящие письма").check()
    await form.get_by_role("button", name="Сохранить").click()
    await expect(page.get_by_role("dialog")).to_have_count(0)
    await page.screenshot(path=SCREENS / "employee-gateways.png")

    await page.get_by_role("tab", name="Правила").click()
    await expect(page.locator("[data-rule]")).to_have_count(1)  # (theirs; not the global one)
    for owners_only in ("Создать правило", "Удалить", "Проверить"):
        await expect(page.get_by_role("button", name=owners_only)).to_have_count(0)
    await page.locator('[data-rule="clerks-news"]').get_by_role("button", name="Редактировать").click()
    form = page.get_by_role("dialog")
    await expect(form.get_by_label("Название правила")).to_be_disabled()
    await expect(form.get_by_label("Правило для")).to_be_disabled()
    await expect(form.get_by_label("Разрешить редактирование правила")).to_have_count(0)
    await form.get_by_label("Заголовок").fill("news, новости")
    await form.get_by_role("button", name="Сохранить").click()
    await expect(page.locator('[data-rule="clerks-news"]')).to_contain_text("news, новости")
    await page.screenshot(path=SCREENS / "employee-rules.png")

    await page.get_by_role("tab", name="Задачи").click()
    await expect(page.get_by_role("button", name="Удалить комментарий")).to_have_count(0)
    assert page.errors == []  # type: ignore[attr-defined]


async def test_a_long_task_is_read_a_page_at_a_time(browser: Browser, site: Site) -> None:
    page = await signed_in(browser, site, "boss")
    await page.get_by_role("tab", name="Задачи").click()
    await page.get_by_role("button", name="Sales / Archive").click()
    comments = page.locator("[data-comment]")
    await expect(comments).to_have_count(50)
    await expect(comments.first).to_contain_text("old 59")  # (newest first)
    await page.get_by_role("button", name="Ещё, раньше").click()
    await expect(comments).to_have_count(60)
    await expect(comments.last).to_contain_text("old 0")
    await expect(page.get_by_role("button", name="Ещё, раньше")).to_have_count(0)
    assert page.errors == []  # type: ignore[attr-defined]


async def test_the_page_is_used_with_the_keyboard(browser: Browser, site: Site) -> None:
    page = await (await browser.new_context(locale="ru-RU")).new_page()
    await page.goto(site.url)
    await expect(page.get_by_label("Логин")).to_be_focused()  # (the first field, at once)
    await page.keyboard.type("boss")
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORDS["boss"])
    await page.keyboard.press("Enter")
    create = page.get_by_role("button", name="Создать сервер")
    await create.focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("dialog")).to_be_visible()
    await expect(page.get_by_role("dialog").get_by_label("Название")).to_be_focused()  # (the dialog's first field)
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("dialog")).to_have_count(0)


async def test_a_session_that_ends_brings_back_the_sign_in(browser: Browser, site: Site) -> None:
    page = await signed_in(browser, site, "boss", locale="en-GB")  # (English: the browser's language)
    await expect(page.get_by_role("button", name="Create server")).to_be_visible()
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page = await signed_in(browser, site, "boss")
    store = SqliteStore(Path(site.daemon.config.store_location()))
    with store.acting_for(store.organisation("acme").id):
        store.set_password("boss", hash_password("a-new-password"))
    store.close()
    await page.get_by_role("tab", name="Правила").click()  # (a click that asks the API)
    await page.get_by_role("tab", name="Задачи").click()
    await page.get_by_role("button", name="Sales / Invoices").click()
    await expect(page.get_by_role("alert")).to_contain_text("Сеанс закончился")
