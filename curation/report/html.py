"""Render report.json as one self-contained HTML page: inline CSS and SVG, no script, no request.

A Content-Security-Policy meta tag forbids every fetch and every script, so even a
chart that slipped past sanitising could not load anything. The print stylesheet hides
the navigation, keeps table headers on each page and starts the sign-off on a new page.
"""

from __future__ import annotations

import re
from typing import Any

from curation.report import sections
from curation.report.render import badge, esc

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

_MARGIN = "font:8pt Helvetica,Arial,sans-serif;color:#5b6573"
CSS = """
:root{--ink:#1d2430;--muted:#5b6573;--line:#d8dde4;--soft:#f4f6f9;--accent:#2f6f9f;--ok:#1e7b45;--bad:#b42318;--warn:#a15c00;--none:#5b6573}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:var(--ink);background:#fff;counter-reset:sec}
main{max-width:1040px;margin:0 auto;padding:0 28px 48px}
header.top{background:#17324d;color:#fff;padding:22px 28px 18px}
header.top .inner{max-width:1040px;margin:0 auto;padding:0 28px}
header.top h1{margin:0;font-size:24px;font-weight:650;letter-spacing:.2px}
header.top .sub{margin-top:4px;color:#c9d6e3;font-size:13px}
header.top code{color:#fff;background:rgba(255,255,255,.12)}
nav.toc{margin:18px 0 8px;padding:12px 16px;background:var(--soft);border:1px solid var(--line);border-radius:6px;columns:2;column-gap:32px;font-size:13px;counter-reset:toc}
nav.toc a{color:var(--ink);text-decoration:none;display:block;padding:1px 0;counter-increment:toc}
nav.toc a::before{content:counter(toc) ". ";color:var(--muted)}
nav.toc a:hover{text-decoration:underline}
nav.toc .off{color:var(--muted)}
section{margin-top:30px;counter-increment:sec}
section>h2{font-size:19px;margin:0 0 10px;padding-bottom:6px;border-bottom:2px solid var(--ink)}
section>h2::before{content:counter(sec) ". ";color:var(--muted)}
section.off>h2{border-bottom-color:var(--line);color:var(--muted)}
h4{margin:18px 0 6px;font-size:14px}
p{margin:6px 0}
.small{font-size:12.5px;color:var(--muted)}
.note{color:var(--muted);font-style:italic}
.error{color:var(--bad);font-weight:600}
code,pre{font-family:"SFMono-Regular",Menlo,Consolas,monospace;font-size:12px;background:var(--soft);border-radius:3px}
code{padding:1px 4px;word-break:break-all}
pre{padding:10px 12px;border:1px solid var(--line);white-space:pre-wrap;word-break:break-word;max-height:none}
pre.config{column-count:2;column-gap:28px;column-rule:1px solid var(--line)}
details.config{margin:14px 0}
details.config summary{cursor:pointer;font-weight:600}
table{border-collapse:collapse;width:100%;margin:8px 0 12px;font-size:13px}
caption{text-align:left;font-weight:600;padding:4px 0}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600;border-bottom:1px solid #b9c1cc}
tbody tr:nth-child(even) td{background:#fafbfc}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td{overflow-wrap:break-word}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;margin:8px 0 12px;font-size:13px}
dl.kv dt{color:var(--muted)}
dl.kv dd{margin:0;word-break:break-word}
.kvcols{column-gap:28px;margin:8px 0 12px;font-size:13px}
.kvcols.c2{columns:2}.kvcols.c3{columns:3}
.kvcols .pair{break-inside:avoid;padding:1.5px 0;overflow-wrap:anywhere}
.kvcols .k{color:var(--muted);margin-right:6px}
td.mono,th.mono{font-family:"SFMono-Regular",Menlo,Consolas,monospace;font-size:11.5px;word-break:break-all}
td.key{white-space:nowrap;font-family:"SFMono-Regular",Menlo,Consolas,monospace;font-size:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:11.5px;font-weight:700;letter-spacing:.3px;white-space:nowrap;border:1px solid currentColor}
.badge.pass,.badge.evidenced{color:var(--ok);background:#e7f4ec}
.badge.fail,.badge.open{color:var(--bad);background:#fdecea}
.badge.warn,.badge.partly_evidenced{color:var(--warn);background:#fff4e0}
.badge.not_validated,.badge.not_run,.badge.unknown{color:var(--none);background:var(--soft)}
.verdict{border:1px solid var(--line);border-left:8px solid var(--none);border-radius:6px;padding:14px 18px;margin:6px 0 14px;background:#fff}
.verdict.pass{border-left-color:var(--ok)}.verdict.fail{border-left-color:var(--bad)}.verdict.warn{border-left-color:var(--warn)}
.verdict .badge{font-size:15px;padding:3px 12px}
.verdict .headline{font-size:16px;font-weight:600;margin:8px 0 4px}
.verdict ul{margin:4px 0 0;padding-left:20px}
.tiles{display:grid;grid-template-columns:repeat(5,minmax(0,1fr));gap:10px;margin:10px 0}
.tile{border:1px solid var(--line);border-radius:6px;padding:10px 12px;background:var(--soft)}
.tile .big{font-size:22px;font-weight:700;font-variant-numeric:tabular-nums}
.tile .lbl{font-size:12px;color:var(--muted)}
.books{font-weight:600;break-after:avoid}
td>code{white-space:nowrap;display:inline-block;margin:1px 0}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:12px;margin:10px 0;align-items:start}
figure.chart{margin:0;padding:8px;border:1px solid var(--line);border-radius:6px;min-width:0;overflow:hidden}
figure.chart svg{width:100%;height:auto}
figure.chart figcaption{font-size:11px;color:var(--muted)}
svg{max-width:100%;height:auto}
ul.samples li{font-family:"SFMono-Regular",Menlo,Consolas,monospace;font-size:12px}
table.art10 td.ref{white-space:nowrap;font-weight:600}
table.art10 a{color:var(--accent)}
.signoff{border:2px solid var(--ink);border-radius:6px;padding:16px 20px}
.signoff ul.decisions{list-style:none;padding:0;margin:12px 0}
.signoff ul.decisions li{margin:6px 0}
.signoff .box{display:inline-block;width:14px;height:14px;border:1.5px solid var(--ink);margin-right:10px;vertical-align:-2px}
.signoff .conditions{height:90px;border:1px solid var(--line);border-radius:4px;padding:6px 8px;margin:10px 0 18px}
.signoff .fields{display:grid;grid-template-columns:1fr 1fr;gap:26px 32px}
.signoff .field .line{display:block;border-bottom:1px solid var(--ink);height:24px}
.signoff .lbl{font-size:12px;color:var(--muted)}
footer{margin-top:36px;padding-top:10px;border-top:1px solid var(--line);font-size:12px;color:var(--muted)}
@media (max-width:720px){.tiles{grid-template-columns:repeat(2,minmax(0,1fr))}nav.toc{columns:1}.charts{grid-template-columns:1fr}}
@page{size:A4;margin:14mm 12mm}
@media print{
 body{font-size:10pt;-webkit-print-color-adjust:exact;print-color-adjust:exact}
 .tiles{gap:6px}
 .charts{grid-template-columns:repeat(2,minmax(0,1fr));gap:8px}
 .tile{padding:6px 8px}.tile .big{font-size:17px}.tile .lbl{font-size:10px}
 table{font-size:9pt}th,td{padding:3px 6px}
 section{margin-top:18px}
 header.top{background:#fff;color:var(--ink);border-bottom:3px solid var(--ink);padding:0 0 8px}
 header.top .inner,main{padding:0;max-width:none}
 header.top .sub{color:var(--muted)}
 header.top code{color:var(--ink);background:var(--soft)}
 nav.toc{display:none}
 a{color:inherit;text-decoration:none}
 section>h2,h4{break-after:avoid}
 tr,figure,.tile,.verdict,dl.kv{break-inside:avoid}
 thead{display:table-header-group}
 section#signoff{break-before:page}
 .signoff{break-inside:avoid}
}
"""


def _page_css(report: dict[str, Any]) -> str:
    """Printed pages carry the run, the dataset fingerprint and page numbers in their margins."""
    run = re.sub(r"[^A-Za-z0-9_.-]", "_", str(report["run"]["run_id"]))
    fp = re.sub(r"[^0-9a-f]", "", str(report["run"].get("dataset_fingerprint") or ""))[:16]
    left = f'"tuneprep compliance report · run {run} · dataset {fp}"'
    return (
        f'@page{{@bottom-left{{content:{left};{_MARGIN}}}@bottom-right{{content:"page " counter(page) " of " counter(pages);{_MARGIN}}}}}'
    )


def _toc(report: dict[str, Any]) -> str:
    items = []
    for s in report["sections"]:
        off = "" if s.get("ran", True) else " class=off"
        suffix = "" if s.get("ran", True) else " (not run)"
        items.append(f'<a href="#{esc(s["id"])}"{off}>{esc(s["title"])}{esc(suffix)}</a>')
    return f"<nav class=toc>{''.join(items)}</nav>"


def _header(report: dict[str, Any]) -> str:
    run = report["run"]
    verdict: dict[str, Any] = next((s for s in report["sections"] if s["id"] == "verdict"), {})
    status = badge(verdict.get("status", "not_validated"))
    return (
        f"<header class=top><div class=inner><h1>{esc(report['title'])}</h1><div class=sub>Run <code>{esc(run['run_id'])}</code> · "
        f"{esc(run['kind'])} data · created {esc(run['created'])} · verdict {status}</div></div></header>"
    )


def render_html(report: dict[str, Any]) -> str:
    """The whole page from the report dict (report.json), sections in registry order."""
    mods = {m.ID: m for m in sections.modules()}
    body = []
    for data in report["sections"]:
        cls = "" if data.get("ran", True) else " class=off"
        body.append(f'<section id="{esc(data["id"])}"{cls}><h2>{esc(data["title"])}</h2>{sections.html(mods[data["id"]], data)}</section>')
    tool = report["generated_by"]
    footer = (
        f"<footer>Generated by {esc(tool['name'])} {esc(tool['version'])} from the run's manifest and stage statistics. "
        "Every number on this page is in <code>report.json</code> beside it; no raw personal data is shown.</footer>"
    )
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{esc(report['title'])}: {esc(report['run']['run_id'])}</title><style>{CSS}{_page_css(report)}</style></head><body>"
        f"{_header(report)}<main>{_toc(report)}{''.join(body)}{footer}</main></body></html>\n"
    )
