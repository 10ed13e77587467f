"""The dashboard's files as the server hands them out, checked without a browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any, get_args

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.hyperparameters import Hyperparameters
from app.main import create_app
from app.models import JobCreate
from app.routes.dashboard import ASSETS_PATH, STATIC_DIR
from app.settings import Settings

KEY = "alice-dashboard-key-0123456789"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
FRONT_END_FILES = sorted(p for p in STATIC_DIR.rglob("*") if p.suffix in {".html", ".js", ".css"})
SCRIPTS = [p for p in FRONT_END_FILES if p.suffix == ".js"]


@pytest.fixture
def keyed_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(
        create_app(settings.model_copy(update={"api_keys": SecretStr(f"alice:{KEY}")}))
    ) as client:
        yield client


class _Page(HTMLParser):
    """The asset references and the submit form's fields of index.html."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.fields: dict[str, dict[str, Any]] = {}
        self._select: str | None = None
        self._in_option = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.references += [v for k, v in attrs if k in {"src", "href"} and v and not v.startswith("#")]
        if tag in {"input", "select"} and attributes.get("name"):
            name = str(attributes["name"])
            self.fields[name] = {"scope": attributes.get("data-scope"), "choices": []}
            self._select = name if tag == "select" else None
        # The blank option (value="") stands for the server's default, not a choice.
        self._in_option = tag == "option" and self._select is not None and "value" not in attributes

    def handle_data(self, data: str) -> None:
        if self._in_option and self._select is not None and data.strip():
            self.fields[self._select]["choices"].append(data.strip())

    def handle_endtag(self, tag: str) -> None:
        self._in_option = False
        if tag == "select":
            self._select = None


def _page() -> _Page:
    page = _Page()
    page.feed((STATIC_DIR / "index.html").read_text())
    return page


def test_the_page_and_its_assets_load_without_a_key_while_the_api_still_needs_one(
    keyed_client: TestClient,
) -> None:
    page = keyed_client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert keyed_client.head("/").status_code == 200
    # A link that appends a query (a tracker's, an old bookmark's) still opens the page.
    assert keyed_client.get("/", params={"utm_source": "mail"}).status_code == 200
    script = keyed_client.get(f"{ASSETS_PATH}/js/main.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert keyed_client.get("/jobs").status_code == 401
    assert keyed_client.get("/jobs", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/"), ("PUT", "/"), ("POST", f"{ASSETS_PATH}/js/main.js"), ("GET", f"{ASSETS_PATH}x/main.js")],
)
def test_only_reads_of_the_dashboard_are_open(keyed_client: TestClient, method: str, path: str) -> None:
    response = keyed_client.request(method, path)
    assert response.status_code == 401
    assert response.json()["detail"].startswith("an API key is required")


def test_every_file_the_page_and_its_scripts_load_is_served(client: TestClient) -> None:
    references = set(_page().references)
    for script in SCRIPTS:
        imports = re.findall(r'from "\./([\w.-]+)"', script.read_text())
        references |= {f"{ASSETS_PATH}/{script.parent.relative_to(STATIC_DIR)}/{name}" for name in imports}
    assert f"{ASSETS_PATH}/js/main.js" in references
    for reference in sorted(references):
        assert reference.startswith(f"{ASSETS_PATH}/"), reference
        assert client.get(reference).status_code == 200, reference


def test_the_front_end_loads_nothing_from_elsewhere() -> None:
    for path in FRONT_END_FILES:
        text = path.read_text()
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text))
        assert urls <= {SVG_NAMESPACE}, f"{path.name} refers to {urls - {SVG_NAMESPACE}}"
        assert "@import" not in text and "url(" not in text, path.name


def test_the_scripts_insert_text_never_markup_and_keep_the_key_out_of_lasting_storage() -> None:
    for path in SCRIPTS:
        text = path.read_text()
        for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert forbidden not in text, f"{path.name} uses {forbidden}"
        for lasting in ("localStorage", "document.cookie", "indexedDB"):
            assert lasting not in text, f"{path.name} uses {lasting}"
    assert "sessionStorage" in (STATIC_DIR / "js" / "api.js").read_text()


def test_the_submit_form_asks_for_real_fields_and_offers_exactly_their_choices() -> None:
    fields = _page().fields
    assert {"name", "dataset", "model", "epochs", "batch_size", "learning_rate"} <= set(fields)
    for name, field in fields.items():
        model = JobCreate if field["scope"] == "job" else Hyperparameters
        assert name in model.model_fields, f"the form sends {name!r}, which {model.__name__} does not take"
        if field["choices"]:
            allowed = [str(choice) for choice in get_args(model.model_fields[name].annotation)]
            assert field["choices"] == allowed, name


def test_the_dashboard_stays_out_of_the_api_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not any(path.startswith(ASSETS_PATH) for path in paths)
