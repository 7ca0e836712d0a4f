"""Screenshots of a history site in the distribution's headless Chromium (selenium).

    python reports/history-example/screenshots.py SITE OUTDIR PAGE=PNG ...

PAGE is a path inside SITE, optionally with a #fragment to scroll to (e.g. cells/<id>.html#time);
PNG may end in :HEIGHT, the window's height in pixels for that page (default 900; width 1280).
"""

import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def main(site: Path, outdir: Path, shots: list[str]) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))
    try:
        for shot in shots:
            page, png = shot.split("=")
            png, _, height = png.partition(":")
            driver.set_window_size(1280, int(height or 900))
            path, _, fragment = page.partition("#")
            driver.get((site / path).resolve().as_uri() + (f"#{fragment}" if fragment else ""))
            time.sleep(2)  # plotly draws after load
            driver.save_screenshot(str(outdir / png))
            print("wrote", outdir / png)
    finally:
        driver.quit()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:])
