"""The OpenAPI 3.1 document and a readable page rendered from it (no scripts, no CDN)."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, json, render_template_string

__all__ = ["init_docs"]

DOCS_TEMPLATE = """{% extends "base.html" %}
{% block title %}JSON API{% endblock %}
{% block content %}
<h1>{{ doc.info.title }} <small>{{ doc.info.version }}</small></h1>
<p>{{ doc.info.description }}</p>
<p>The machine-readable document: <a href="{{ url_for('api_v1_openapi') }}">openapi.json</a>
(OpenAPI {{ doc.openapi }}). Errors are <code>application/problem+json</code> (RFC 9457).</p>
{% if doc.components.securitySchemes %}
<h2>Authentication</h2>
<ul>
{% for name, scheme in doc.components.securitySchemes.items() %}
  <li><strong>{{ name }}</strong>: {{ scheme.description }}</li>
{% endfor %}
</ul>
{% endif %}
{% for path, item in doc.paths.items() %}
{% for method, op in item.items() %}
<section class="operation" id="{{ op.operationId }}">
  <h2><code>{{ method | upper }} {{ path }}</code></h2>
  <p><strong>{{ op.summary }}</strong></p>
  {% if op.description %}<p>{{ op.description | replace('<br/>', ' ') }}</p>{% endif %}
  {% if op.security %}<p>Needs: {% for req in op.security %}{% for scheme, scopes in req.items()
  %}<code>{{ scheme }}</code>{% if scopes %} (scope {{ scopes | join(", ") }}){% endif %}
  {% endfor %}{% if not loop.last %} or {% endif %}{% endfor %}</p>{% endif %}
  {% if op.parameters %}
  <table><thead><tr><th>parameter</th><th>in</th><th>type</th><th>description</th></tr></thead>
  <tbody>{% for p in op.parameters %}<tr><td><code>{{ p.name }}</code>
  {% if p.required %} *{% endif %}</td><td>{{ p["in"] }}</td><td>{{ p.schema.type }}</td>
  <td>{{ p.description }}</td></tr>
  {% endfor %}</tbody></table>
  {% endif %}
  {% if op.requestBody %}<p>Body: {% for media, content in op.requestBody.content.items() %}
  <code>{{ media }}</code> {{ ref_name(content.schema) }}{% endfor %}</p>{% endif %}
  <ul>{% for status, response in op.responses.items() %}
    <li><code>{{ status }}</code> {{ response.description }}{% for media, content in
    (response.content or {}).items() %} — <code>{{ media }}</code>
    <a href="#schema-{{ ref_name(content.schema) }}">{{ ref_name(content.schema) }}</a>
    {% endfor %}</li>
  {% endfor %}</ul>
</section>
{% endfor %}
{% endfor %}
<h2>Schemas</h2>
{% for name, schema in doc.components.schemas.items() %}
<section class="schema" id="schema-{{ name }}">
  <h3>{{ name }}</h3>
  {% if schema.description %}<p>{{ schema.description }}</p>{% endif %}
  {% if schema.properties %}
  <table><thead><tr><th>field</th><th>type</th><th>description</th></tr></thead><tbody>
  {% for field, prop in schema.properties.items() %}
  <tr><td><code>{{ field }}</code>{% if field in (schema.required or []) %} *{% endif %}</td>
  <td>{{ type_of(prop) }}</td><td>{{ prop.description }}</td></tr>
  {% endfor %}</tbody></table>
  {% elif schema.enum %}<p>One of: {{ schema.enum | join(", ") }}</p>{% endif %}
</section>
{% endfor %}
{% endblock %}
"""


def _ref_name(schema: dict[str, Any] | None) -> str:
    if not schema:
        return ""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"list of {_ref_name(schema.get('items'))}"
    return str(schema.get("type", "object"))


def _type_of(prop: dict[str, Any]) -> str:
    if "anyOf" in prop:
        return " or ".join(_type_of(p) for p in prop["anyOf"])
    if "enum" in prop:
        return "one of " + ", ".join(map(str, prop["enum"]))
    if "const" in prop:
        return repr(prop["const"])
    return _ref_name(prop)


def init_docs(app: Flask) -> None:
    """Serve ``/api/v1/openapi.json`` and ``/api/v1/docs``."""

    def openapi_document() -> Response:
        doc = current_app.api_doc  # type: ignore[attr-defined]
        return Response(json.dumps(doc, ensure_ascii=False), mimetype="application/json")

    def docs_page() -> str:
        return render_template_string(
            DOCS_TEMPLATE,
            doc=current_app.api_doc,  # type: ignore[attr-defined]
            ref_name=_ref_name,
            type_of=_type_of,
        )

    app.add_url_rule("/api/v1/openapi.json", "api_v1_openapi", openapi_document)
    app.add_url_rule("/api/v1/docs", "api_v1_docs", docs_page)
