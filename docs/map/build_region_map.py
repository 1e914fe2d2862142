"""Build aggregator/web/static/region-map.svg, the outlines the web reader draws its choropleth from.

Input: `countries-110m.json` of the npm package world-atlas (Natural Earth 1:110m admin-0 countries,
public domain, as TopoJSON). Output: one SVG path per country (ISO 3166 alpha-2) whose outline
touches the region the aggregator covers, in an equirectangular projection centred on it, with
coordinates rounded to a tenth of a unit, each an element of the SVG whose id is the country code.
Pages draw each country with `<use href="/static/region-map.svg?v=…#KZ">`: the outlines (41 KB)
are fetched and cached once, not rendered, compressed and sent with every page.

    npm pack world-atlas && tar xzf world-atlas-*.tgz
    python docs/map/build_region_map.py package/countries-110m.json aggregator/web/static/region-map.svg
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pycountry

WEST, EAST, SOUTH, NORTH = 18.0, 112.0, 18.0, 66.0  # the region's box, degrees
WIDTH = 1000.0
PARALLEL = math.cos(math.radians(42.0))  # the standard parallel keeps Central Asia's proportions
SCALE = WIDTH / ((EAST - WEST) * PARALLEL)
# Natural Earth codes these without an ISO numeric id; the reader has no posts for the rest.
SPECIAL = {"Kosovo": "XK", "N. Cyprus": None, "Somaliland": None}


def arcs_of(topology: dict) -> list[list[tuple[float, float]]]:
    """Absolute lon/lat points of each arc (TopoJSON quantizes and delta-encodes them)."""
    (sx, sy), (tx, ty) = topology["transform"]["scale"], topology["transform"]["translate"]
    result = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((x * sx + tx, y * sy + ty))
        result.append(points)
    return result


def ring(indexes: list[int], arcs: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = []
    for i in indexes:
        arc = arcs[i] if i >= 0 else list(reversed(arcs[~i]))
        points.extend(arc[1:] if points else arc)
    return points


def project(lon: float, lat: float) -> tuple[float, float]:
    return (lon - WEST) * PARALLEL * SCALE, (NORTH - lat) * SCALE


def path(rings: list[list[tuple[float, float]]]) -> str:
    parts = []
    for points in rings:
        xy = [project(lon, lat) for lon, lat in points]
        parts.append("M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in xy) + "Z")
    return "".join(parts)


def touches_region(rings: list[list[tuple[float, float]]]) -> bool:
    return any(WEST <= lon <= EAST and SOUTH <= lat <= NORTH for points in rings for lon, lat in points)


def main(source: Path, target: Path) -> None:
    topology = json.loads(source.read_text())
    arcs = arcs_of(topology)
    countries: dict[str, str] = {}
    for geometry in topology["objects"]["countries"]["geometries"]:
        name = geometry["properties"]["name"]
        polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
        rings = [ring(r, arcs) for polygon in polygons for r in polygon]
        if not touches_region(rings):
            continue
        country = pycountry.countries.get(numeric=geometry.get("id", "")) if geometry.get("id") else None
        code = country.alpha_2 if country else SPECIAL.get(name)
        if code:
            countries[code] = countries.get(code, "") + path(rings)
    height = (NORTH - SOUTH) * SCALE
    target.write_text(sprite(f"0 0 {WIDTH:.0f} {height:.0f}", countries))


def sprite(view_box: str, countries: dict[str, str]) -> str:
    """The outlines as one SVG, a path per country (id: its code), in code order."""
    paths = "".join(f'<path id="{code}" d="{d}"/>\n' for code, d in sorted(countries.items()))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{view_box}">\n'
            "<!-- Natural Earth 1:110m (public domain), via world-atlas -->\n"
            f"<defs>\n{paths}</defs>\n</svg>\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
