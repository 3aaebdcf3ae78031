"""Regions: which of telefunc's six Durable Object regions serves a request.

A request's Cloudflare colo (``request.cf.colo``, an IATA airport code) maps to one of
``wnam enam weur eeur apac oc`` (:data:`REGIONS`, valid ``locationHint`` values). An unknown colo
falls back to the request's continent (``request.cf.continent``: Africa → weur, Asia → apac,
Oceania and Antarctica → oc, South America → enam; North America and Europe are ambiguous and are
not guessed), then to ``location_fallback``. With a per-region ``scale`` map a region that has no
objects of its own routes to ``location_fallback`` too.

Pure Python: no ``js``/``workers`` imports (see :mod:`telefunc.cloudflare._ffi`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from telefunc.errors import UsageError

__all__ = [
    "COLO_REGIONS",
    "CONTINENT_REGIONS",
    "REGIONS",
    "Scale",
    "colo_region",
    "normalize_scale",
    "resolve_region",
    "shard_count",
]

REGIONS: tuple[str, ...] = ("wnam", "enam", "weur", "eeur", "apac", "oc")
"""The six regions telefunc places Durable Objects in (each is a Cloudflare ``locationHint``)."""

Scale = int | Mapping[str, int]
"""Objects per region: one number for every region, or a count per listed region."""

# Cloudflare colos (IATA codes) by the region that serves them; 333 colos as of telefunc 0.2.23.
_COLOS_BY_REGION: dict[str, str] = {
    "wnam": (
        "ABQ ANC AUS DEN GDL HNL LAS LAX MEX PDX PHX QRO SAN SAT SEA SFO SJC SLC SMF YVR YXE YYC"
    ),
    "enam": (
        "ARI ARU ASU ATL BAQ BEL BGI BGR BNA BNU BOG BOS BSB BUF CAW CCP CFC CGB CLE CLO CLT "
        "CMH CNF COR CWB DFW DTW EWR EZE FLN FOR FSD GEO GIG GND GRU GUA GYE GYN IAD IAH IND "
        "JAX JDO JOI KIN LIM LPB MAO MCI MDE MEM MIA MSP NQN NVT OKC OMA ORD ORF PBM PHL PIT "
        "PMW POA POS PTY QWJ RAO RDU REC RIC SAP SCL SDQ SJK SJO SJP SJU SOD SSA STI STL TGU "
        "TLH TPA UDI UIO VCP VIX XAP YHZ YOW YUL YWG YYZ"
    ),
    "weur": (
        "AAE ABJ ACC ADD ALG AMS ASK BCN BOD BRU CAI CDG CPH CPT CZL DAR DKR DUB DUR DUS EBB "
        "FCO FIH FRA GBE GOT GVA HAM HRE JIB JNB KEF KGL LAD LHR LIS LLW LOS LUN LUX LYS MAD "
        "MAN MBA MPM MRS MRU MUC MXP NBO ORN OSL OUA RUN STR TNR TUN WDH ZRH"
    ),
    "eeur": (
        "ADB AMM ARN ATH BAH BEG BEY BGW BSR BTS BUD DME DMM DOH DXB EBL GYD HEL HFA IST ISU "
        "JED KBP KIV KWI LCA LED LLK MCT MLA MSQ NJF OTP PMO PRG RIX RUH SKG SKP SOF TBS TIA "
        "TLL TLV TXL VIE VNO WAW WRO XNH ZAG ZDM"
    ),
    "apac": (
        "ACX AGR AKX ALA AMD BHY BKK BLR BOM BWN CAN CCU CEB CGD CGK CGO CGP CGY CJB CKG CMB "
        "CNN CNX COK CRK CSX CTU CZX DAC DAD DEL DLC DPS EVN FOC FRU FUK FUO HAK HAN HGH HKG "
        "HYD HYN ICN ISB IXC JHB JOG JXG KCH KHH KHI KHN KIX KJA KMG KNU KTM KUL KWE LHE MAA "
        "MFM MLE MLG MNL NAG NQZ NRT OKA PAT PBH PKX PNH SGN SHA SIN SJW SZX TAO TEN TNA TPE "
        "TYN ULN URT VTE XFN XIY"
    ),
    "oc": ("ADL AKL BNE CBR CHC GUM HBA MEL NOU PER PPT SUV SYD WLG"),
}

COLO_REGIONS: dict[str, str] = {
    colo: region for region, colos in _COLOS_BY_REGION.items() for colo in colos.split()
}
"""Colo (upper-case IATA code) → region."""

CONTINENT_REGIONS: dict[str, str] = {
    "AF": "weur",
    "AS": "apac",
    "OC": "oc",
    "SA": "enam",
    "AN": "oc",
}
"""Continent code → region for colos missing from :data:`COLO_REGIONS` (NA, EU: ambiguous)."""


def colo_region(colo: str | None, continent: str | None = None) -> str | None:
    """The region of a colo, else of its continent, else ``None``."""
    if colo:
        region = COLO_REGIONS.get(colo.strip().upper())
        if region is not None:
            return region
    if continent:
        return CONTINENT_REGIONS.get(continent.strip().upper())
    return None


def normalize_scale(scale: Scale, location_fallback: str) -> dict[str, int]:
    """Validate ``scale`` and ``location_fallback``; return the object count of every region.

    Raises :class:`UsageError` for an unknown region, a count that is not a non-negative integer
    (positive for a single number), or a per-region map that leaves ``location_fallback`` without
    objects (requests from unlisted regions go there).
    """
    if location_fallback not in REGIONS:
        raise UsageError(
            f"location_fallback must be one of {', '.join(REGIONS)}, got {location_fallback!r}"
        )
    if isinstance(scale, bool) or not isinstance(scale, int | Mapping):
        raise UsageError(f"scale must be a positive integer or a per-region map, got {scale!r}")
    if isinstance(scale, int):
        if scale < 1:
            raise UsageError(f"scale must be a positive integer, got {scale!r}")
        return dict.fromkeys(REGIONS, scale)
    counts = dict.fromkeys(REGIONS, 0)
    for region, count in scale.items():
        if region not in REGIONS:
            raise UsageError(
                f"scale names an unknown region {region!r}; regions are {', '.join(REGIONS)}"
            )
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise UsageError(f"scale[{region!r}] must be a non-negative integer, got {count!r}")
        counts[region] = count
    if counts[location_fallback] == 0:
        raise UsageError(
            f"location_fallback {location_fallback!r} must appear in the per-region scale map "
            "with a count greater than 0: requests from regions you did not list route to it "
            "(location_fallback defaults to 'weur')"
        )
    return counts


def shard_count(counts: Mapping[str, int], region: str) -> int:
    """How many session objects ``region`` has (0: the region routes to the fallback)."""
    return counts.get(region, 0)


def resolve_region(
    cf: Mapping[str, Any] | None, scale: Scale, location_fallback: str = "weur"
) -> str:
    """The region that serves a new session.

    ``cf`` holds the request's ``colo`` and ``continent`` (plain values of ``request.cf``):
    colo table, then continent, then ``location_fallback``; a region without objects under
    ``scale`` routes to ``location_fallback``.
    """
    counts = normalize_scale(scale, location_fallback)
    cf = cf or {}
    colo, continent = cf.get("colo"), cf.get("continent")
    region = (
        colo_region(
            colo if isinstance(colo, str) else None,
            continent if isinstance(continent, str) else None,
        )
        or location_fallback
    )
    if shard_count(counts, region) == 0:
        region = location_fallback
    return region
