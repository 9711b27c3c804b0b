"""The API's own description, generated: OpenAPI 3.1 at /api/v1/openapi.json, and a readable page.

Nothing here is written by hand but the tags and the shared error responses: the
paths come from the route table (:mod:`yasearch.httpkit`, what ``route()``
recorded), the schemas from the msgspec models the routes declare
(:mod:`yasearch.apimodels`), so the document describes exactly what is served.
``tests/test_public_api.py`` checks that every route the app registers under
``/api/v1/`` is described and that the document validates. The page at
``/api/v1/docs`` is rendered from the same document with a Jinja2 template.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import jinja2
import msgspec
from aiohttp import web
from markupsafe import Markup, escape

from yasearch import __version__, api, compat
from yasearch.apimodels import Error
from yasearch.httpkit import Route, canonical, path_parameters, route, routes, wants_json
from yasearch.middleware import SECURITY_HEADERS

JSON = "application/json"
REF = "#/components/schemas/{name}"

TAGS = {
    "search": "Searching and completions",
    "crawl": "Crawl jobs (admin)",
    "index": "This peer's local index: browse, look up, remove (admin)",
    "peer": "This peer and the network",
    "compat": "YaCy and OpenSearch compatible routes",
    "meta": "This description",
    "p2p": "The peer-to-peer protocol: what peers say to each other (see docs/protocol.md)",
}

#: The error statuses routes declare, as shared responses (all with the Error schema).
ERRORS = {
    400: ("BadRequest", "Bad parameters or body (the message names the one at fault)"),
    403: ("Forbidden", "Admin route: loopback clients only, or 'Authorization: Bearer <admin_token>' when a token is configured"),
    404: ("NotFound", "No such thing"),
    409: ("Conflict", "The action does not fit the current state"),
    413: ("TooLarge", "The request body is over the size limit"),
    503: ("Busy", "Too many open event streams; poll instead"),
}

DESCRIPTION = (
    "The JSON API of one yasearch peer. Admin routes (crawl, index) answer loopback clients only, "
    "unless the peer has an admin token: then send `Authorization: Bearer <token>`. "
    "Every JSON error is `{\"error\": {\"code\", \"message\"}}`. "
    "The peer-to-peer protocol under /p2p/v1 is for peers; its routes are listed under the p2p tag."
)


def _content(spec: Any, schema_of: Mapping[Any, Any]) -> dict[str, Any]:
    """A route's ``body``/``response`` declaration as OpenAPI content."""
    media = spec if isinstance(spec, Mapping) else {JSON: spec}
    out = {}
    for ctype, model in media.items():
        if model is None:  # an undescribed body: a JSON object, or text
            schema: Any = {"type": "object"} if ctype == JSON else {"type": "string"}
        else:
            schema = schema_of[model]
        out[ctype] = {"schema": schema}
    return out


def _models(table: Iterable[Route]) -> list[Any]:
    found: list[Any] = [Error]
    for r in table:
        for spec in (r.body, r.response):
            for model in (spec.values() if isinstance(spec, Mapping) else [spec]):
                if model is not None and model not in found:
                    found.append(model)
    return found


def _parameters(r: Route) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for name, choices in path_parameters(r.path):
        schema: dict[str, Any] = {"type": "string", "enum": choices} if choices else {"type": "string"}
        p = {"name": name, "in": "path", "required": True, "schema": schema}
        if name in r.path_params:
            p["description"] = r.path_params[name]
        params.append(p)
    if r.query is not None:
        _, defs = msgspec.json.schema_components([r.query], ref_template=REF)
        model = defs[r.query.__name__]
        for name, schema in model["properties"].items():
            schema = dict(schema)
            params.append({
                "name": name,
                "in": "query",
                "required": name in model.get("required", []),
                "description": schema.pop("description", ""),
                "schema": schema,
            })
    return params


def _responses(r: Route, schema_of: Mapping[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {str(r.status): {"description": r.summary, "content": _content(r.response, schema_of)}}
    statuses = set(r.errors) | ({403} if r.admin else set())
    for status in sorted(statuses):
        name, description = ERRORS[status]
        if wants_json(r.path):
            out[str(status)] = {"$ref": f"#/components/responses/{name}"}
        else:
            out[str(status)] = {"description": f"{description} (plain-text message)", "content": {"text/plain": {"schema": {"type": "string"}}}}
    return out


def _operation_ids(table: list[Route]) -> dict[Route, str]:
    """The handler's name, unless two routes share a handler: then method and path."""
    names = [r.operation_id or r.handler.__name__ for r in table]
    return {
        r: name if names.count(name) == 1 else r.method.lower() + "_" + "_".join(re.findall(r"\w+", canonical(r.path)))
        for r, name in zip(table, names)
    }


def _api_app() -> web.Application:
    """An app with the API routes only: the description without a running peer."""
    app = web.Application()
    api.setup(app)
    compat.setup(app)
    setup(app)
    return app


def spec(app: web.Application | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``'s public routes (without servers; see :func:`document`)."""
    table = [r for r in routes(app if app is not None else _api_app()) if r.public]
    models = _models(table)
    refs, schemas = msgspec.json.schema_components(models, ref_template=REF)
    schema_of = dict(zip(models, refs))
    ids = _operation_ids(table)
    paths: dict[str, Any] = {}
    for r in table:
        op: dict[str, Any] = {"operationId": ids[r], "tags": [r.tag], "summary": r.summary}
        if r.description:
            op["description"] = r.description
        params = _parameters(r)
        if params:
            op["parameters"] = params
        if r.body is not None:
            op["requestBody"] = {"required": True, "content": _content(r.body, schema_of)}
        op["responses"] = _responses(r, schema_of)
        paths.setdefault(canonical(r.path), {})[r.method.lower()] = op
    used = {r.tag for r in table}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "yasearch API",
            "version": __version__,
            "summary": "Peer-to-peer web search: search, suggestions, crawl jobs, peer status",
            "description": DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [{"name": name, "description": text} for name, text in TAGS.items() if name in used],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                name: {"description": text, "content": {JSON: {"schema": schema_of[Error]}}} for name, text in ERRORS.values()
            },
        },
    }


def document(app: web.Application, base: str | None = None) -> dict[str, Any]:
    doc = spec(app)
    if base:
        doc["servers"] = [{"url": base}]
    return doc


# -- the readable page -------------------------------------------------------------------

_HERE = Path(__file__).parent / "templates"
_METHODS = ("get", "post", "put", "patch", "delete")
_CSS = (_HERE / "api_docs.css").read_text(encoding="utf-8")
#: The page's one inline style, allowed by its hash (the app's policy allows no inline style).
_CSP = SECURITY_HEADERS["Content-Security-Policy"].replace(
    "style-src 'self'", f"style-src 'self' 'sha256-{base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()}'"
)


def _schema_text(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    t = schema.get("type", "")
    t = " | ".join(t) if isinstance(t, list) else t
    if "enum" in schema:
        t += " (" + ", ".join(json.dumps(v) for v in schema["enum"]) + ")"
    bits = []
    for key, label in (("minimum", "min"), ("maximum", "max"), ("maxLength", "max length"), ("default", "default")):
        if key in schema:
            bits.append(f"{label} {json.dumps(schema[key])}")
    return t + (f"; {', '.join(bits)}" if bits else "")


def _schema_link(schema: dict[str, Any]) -> Markup:
    if "$ref" in schema:
        name = escape(schema["$ref"].rsplit("/", 1)[-1])
        return Markup(f'<a href="#schema-{name}">{name}</a>')
    return escape(_schema_text(schema))


def _code(text: str) -> Markup:
    """`backticks` as <code>, everything else escaped."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(_HERE)),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(schema_text=_schema_text, schema_link=_schema_link, code=_code, pretty=lambda v: json.dumps(v, indent=2))


def render_html(doc: dict[str, Any]) -> str:
    responses = doc["components"]["responses"]
    operations = [
        {
            "id": op["operationId"],
            "method": method,
            "path": path,
            "tag": op["tags"][0],
            "summary": op.get("summary", ""),
            "description": op.get("description", ""),
            "parameters": item.get("parameters", []) + op.get("parameters", []),
            "body": op.get("requestBody", {}).get("content", {}),
            "responses": [
                (status, responses[resp["$ref"].rsplit("/", 1)[-1]] if "$ref" in resp else resp)
                for status, resp in op["responses"].items()
            ],
        }
        for path, item in doc["paths"].items()
        for method in _METHODS
        if (op := item.get(method))
    ]
    return _ENV.get_template("api_docs.html").render(
        info=doc["info"], tags=doc["tags"], operations=operations, schemas=doc["components"]["schemas"], css=Markup(_CSS)
    )


# -- handlers -------------------------------------------------------------------------------


async def openapi_json(request: web.Request) -> web.Response:
    doc = document(request.app, compat.base_url(request))
    return web.json_response(doc, dumps=lambda o: json.dumps(o, indent=1))


async def docs_page(request: web.Request) -> web.Response:
    html = render_html(document(request.app, compat.base_url(request)))
    return web.Response(text=html, content_type="text/html", headers={"Content-Security-Policy": _CSP})


async def docs_redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/api/v1/docs")


def setup(app: web.Application) -> None:
    route(app, "GET", "/api/v1/openapi.json", openapi_json, tag="meta", summary="This document",
          response={JSON: None})
    route(app, "GET", "/api/v1/docs", docs_page, tag="meta", summary="This document as a readable HTML page",
          response={"text/html": None})
    route(app, "GET", "/api", docs_redirect, tag="meta", summary="To the docs page", public=False)
    route(app, "GET", "/api/v1", docs_redirect, tag="meta", summary="To the docs page", public=False)
