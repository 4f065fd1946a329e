#!/usr/bin/env python3
"""Writes a long, realistic scenario for benchmarks: every feed of one region (or of
--regions N regions, interleaved by time), with pollution episodes, coal stress, storms with
acknowledgements, and some malformed input.

    python3 scripts/gen_scenario.py --days 365 --stations 20 > big.jsonl
    python3 scripts/gen_scenario.py --days 14 --stations 10 --regions 100 > many.jsonl

With --regions N > 1 the regions are r000 … r(N-1) (--print-config prints the [[region]]
table a replay needs); region i draws from its own generator seeded seed + i, so region 0
of a multi-region file is the single-region file of the same seed.

Deterministic for a given --seed. Streams its output: any size, constant memory.
"""
import argparse
import heapq
import json
import random
import sys
from datetime import datetime, timedelta, timezone

CST = timezone(timedelta(hours=8))


def ts(t):
    return t.isoformat()


class Region:
    """The feeds of one region, one hour at a time."""

    def __init__(self, a, region, rnd, push):
        self.a, self.rnd, self.push = a, rnd, push
        self.root = f"ers/{region}"
        self.aqi = 80.0
        self.stock = {f"plant-{i}": 25.0 for i in range(a.plants)}
        self.price = 900.0
        self.warn_n = 0

    def line(self, at, topic, payload):
        self.push(at, json.dumps({"at": ts(at), "topic": f"{self.root}/{topic}", "payload": payload},
                                 ensure_ascii=False, separators=(",", ":")))

    def hour(self, h, start):
        a, rnd, line, root = self.a, self.rnd, self.line, self.root
        t = start + timedelta(hours=h)
        # Air: an episode every ~10 days, hourly observation 5 minutes after the hour.
        phase = (h % 240) / 240.0
        target = 260.0 if 0.3 < phase < 0.5 else 70.0
        aqi = self.aqi = max(5.0, min(480.0, self.aqi + (target - self.aqi) * 0.08 + rnd.gauss(0, 8)))
        line(t + timedelta(minutes=5), "air/aqi",
             {"ts": ts(t), "aqi": round(aqi), "primary": "PM2.5" if aqi > 50 else None,
              "so2_ug_m3": round(rnd.uniform(5, 40), 1)})
        if h % 12 == 0:
            hours = []
            for k in range(1, 73):
                v = max(5.0, aqi + (target - aqi) * min(1.0, k / 24) + rnd.gauss(0, 10))
                hours.append({"ts": ts(t + timedelta(hours=k)), "aqi": round(v), "primary": "PM2.5"})
            line(t + timedelta(minutes=10), "air/forecast", {"issued": ts(t), "hours": hours})
        # Weather observations per station.
        storm = (h % (24 * 17)) in range(100, 106)
        for s in range(a.stations):
            rain = rnd.uniform(20, 45) if storm else (rnd.uniform(0, 2) if rnd.random() < 0.1 else 0)
            line(t + timedelta(minutes=6), "weather/obs",
                 {"ts": ts(t), "station": f"st-{s:03d}", "rain_mm": round(rain, 1)})
        if (h % (24 * 17)) == 101:
            self.warn_n += 1
            wid = f"w-{self.warn_n}"
            line(t + timedelta(minutes=20), "weather/warning",
                 {"ts": ts(t), "id": wid, "hazard": "rainstorm", "color": "orange", "action": "issue"})
            line(t + timedelta(minutes=21), "cmd", {"cmd": "ack", "call_id": f"{wid}/1", "person": "yjj-duty"})
            line(t + timedelta(hours=5), "weather/warning",
                 {"ts": ts(t + timedelta(hours=5)), "id": wid, "hazard": "rainstorm", "action": "lift"})
        if h % 24 == 9:
            day = t.date()
            stressed = (h // 24) % 40 in range(10, 22)
            line(t, "coal/output", {"date": day.isoformat(),
                                    "output_t": round(rnd.uniform(420000, 490000) if stressed else rnd.uniform(505000, 560000))})
            self.price = max(500.0, self.price * (1 + rnd.gauss(0, 0.03 if stressed else 0.01)))
            line(t + timedelta(minutes=1), "coal/price", {"date": day.isoformat(), "price_cny_t": round(self.price, 1)})
            for p in self.stock:
                self.stock[p] = max(5.0, min(30.0, self.stock[p] + (-0.8 if stressed else 0.6) + rnd.gauss(0, 0.3)))
                line(t + timedelta(minutes=2), "coal/stock",
                     {"ts": ts(t), "plant": p, "stock_t": round(self.stock[p] * 10000), "burn_t_per_day": 10000})
            line(t + timedelta(minutes=3), "coal/storage",
                 {"ts": ts(t), "storage_t": round(rnd.uniform(4.5e6, 7e6))})
        if h % 97 == 0:
            self.push(t + timedelta(minutes=30), json.dumps(
                {"at": ts(t + timedelta(minutes=30)), "topic": f"{root}/air/aqi", "payload": "{\"ts\": broken"}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--stations", type=int, default=10)
    ap.add_argument("--plants", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--region", default="shuozhou")
    ap.add_argument("--regions", type=int, default=1)
    ap.add_argument("--print-config", action="store_true",
                    help="print the [[region]] table for --regions and exit")
    a = ap.parse_args()
    if a.regions > 1:
        regions = [f"r{i:03d}" for i in range(a.regions)]
    else:
        regions = [a.region]
    if a.print_config:
        if regions == ["shuozhou"]:
            return  # the default region
        for r in regions:
            print(f'[[region]]\nid = "{r}"\nname = "{r}"\n')
        return
    out = sys.stdout
    start = datetime(2023, 11, 1, 0, 0, tzinfo=CST)

    pending = []  # (at, seq, text): lines are written in arrival order
    seq = [0]

    def push(at, text):
        seq[0] += 1
        heapq.heappush(pending, (at, seq[0], text))

    def flush(before):
        while pending and (before is None or pending[0][0] < before):
            out.write(heapq.heappop(pending)[2])
            out.write("\n")

    feeds = [Region(a, r, random.Random(a.seed + i), push) for i, r in enumerate(regions)]
    for h in range(a.days * 24):
        for f in feeds:
            f.hour(h, start)
        flush(start + timedelta(hours=h + 1))
    flush(None)
    out.write(json.dumps({"at": ts(start + timedelta(days=a.days)), "end": True}) + "\n")


if __name__ == "__main__":
    main()
