"""Vega-Lite plots without network: an offline page template for DVC, and PNG rendering.

DVC's HTML loads vega, vega-lite and vega-embed from a CDN, so offline the page is
blank (dvc#5679). ``python -m digits.reporting.render`` writes ``.dvc/offline.html``, a page
template with the three libraries inlined (from vl-convert), which ``.dvc/config``
names as ``plots.html_template``.
"""

from __future__ import annotations

import sys
from pathlib import Path

OFFLINE_TEMPLATE = Path(".dvc/offline.html")

PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>DVC plots</title>
  <script>{bundle}</script>
  <style>
    body {{ font-family: sans-serif; }}
    table {{ border-spacing: 15px; }}
  </style>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def offline_template() -> str:
    """DVC's page template, with vega, vega-lite and vega-embed inlined, as HTML."""
    import vl_convert

    # Inside an inline <script>, "</script" would end the element early.
    bundle = vl_convert.javascript_bundle().replace("</script", "<\\/script")
    return PAGE.format(bundle=bundle)


def vegalite_to_png(spec: dict, path: Path, scale: float = 1.5) -> None:
    """Render a Vega-Lite spec to a PNG file, offline."""
    import vl_convert

    Path(path).write_bytes(vl_convert.vegalite_to_png(spec, scale=scale))


def main() -> None:
    from digits.core.files import atomic_file

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OFFLINE_TEMPLATE
    with atomic_file(target) as tmp:
        tmp.write_text(offline_template())
    print(f"render: offline plots template written to {target}")


if __name__ == "__main__":
    main()
