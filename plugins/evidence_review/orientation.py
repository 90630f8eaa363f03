"""How the view page shows a stored picture upright and at which zoom steps.

Pure functions and tables (no Airflow, no web framework), so the browser test can render the
real template with them without starting Airflow.
"""

from __future__ import annotations

from typing import Any

FIT_BOX = (1100, 760)  # the view page's frame, in CSS pixels

# EXIF orientation -> CSS transform (origin top left) that shows the stored picture upright;
# the translations bring the turned picture back into its box. A JPEG's view keeps the stored
# pixels (its metadata, the orientation with it, is removed), so the page turns it.
ORIENTATION_CSS = {
    1: "none",
    2: "scaleX(-1) translateX(-100%)",
    3: "rotate(180deg) translate(-100%, -100%)",
    4: "scaleY(-1) translateY(-100%)",
    5: "rotate(90deg) scaleY(-1)",
    6: "rotate(90deg) translateY(-100%)",
    7: "rotate(90deg) scaleX(-1) translate(-100%, -100%)",
    8: "rotate(270deg) translateX(-100%)",
}


def zoom_levels(width: int, height: int, orientation: int) -> list[dict[str, Any]]:
    """Zoom steps for the view page: label, picture size (as stored) and frame content size
    (as shown, turned), in CSS pixels. Fit, then 100 % and 200 % (or 2x and 4x of a small one)."""
    turned = orientation in {5, 6, 7, 8}
    shown_w, shown_h = (height, width) if turned else (width, height)
    fit = min(FIT_BOX[0] / shown_w, FIT_BOX[1] / shown_h)
    steps = [("fit", fit), ("100 %", 1.0), ("200 %", 2.0)] if fit < 1 else []
    steps = steps or [("fit", fit), ("2× fit", 2 * fit), ("4× fit", 4 * fit)]
    levels = []
    for index, (label, scale) in enumerate(steps):
        w, h = round(width * scale), round(height * scale)
        levels.append(
            {
                "id": f"zoom-{index}",
                "label": label,
                "img_w": w,
                "img_h": h,
                "box_w": h if turned else w,
                "box_h": w if turned else h,
            }
        )
    return levels
