#!/usr/bin/env python3
"""Writes the shipped tasks' data: adapters/<task>/{train,eval}.jsonl (prompt/completion records).

  python3 adapters/generate.py

Standard library only, seeded: running it again gives the same files. Each task is one the base
model does not already do, with an answer that can be checked exactly.
"""
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]


def date_iso(rng):
    """A written date -> ISO 8601 (YYYY-MM-DD)."""
    y, m = rng.randint(1950, 2035), rng.randint(1, 12)
    d = rng.randint(1, 28)
    style = rng.randrange(3)
    if style == 0:
        text = f"{MONTHS[m - 1]} {d}, {y}"
    elif style == 1:
        text = f"{d} {MONTHS[m - 1]} {y}"
    else:
        text = f"{MONTHS[m - 1][:3]}. {d} {y}"
    return {"prompt": f"Date: {text}\nISO:", "completion": f" {y:04d}-{m:02d}-{d:02d}"}


CATEGORIES = {
    "K7": ["kettle", "frying pan", "chef knife", "cutting board", "blender", "toaster", "saucepan", "whisk",
           "colander", "rolling pin", "coffee grinder", "baking tray"],
    "G2": ["garden hose", "rake", "lawn mower", "pruning shears", "wheelbarrow", "watering can", "trowel",
           "seed tray", "leaf blower", "hedge trimmer", "compost bin", "garden gloves"],
    "E5": ["laptop charger", "usb cable", "headphones", "webcam", "keyboard", "computer mouse", "monitor",
           "power bank", "router", "smart speaker", "memory card", "phone case"],
}
ADJECTIVES = ["red", "large", "compact", "steel", "wireless", "cheap", "premium", "blue", "foldable", "heavy-duty"]


def category_code(rng):
    """A product description -> its department code (K7 kitchen, G2 garden, E5 electronics)."""
    code = rng.choice(sorted(CATEGORIES))
    item = rng.choice(CATEGORIES[code])
    adj = rng.choice(ADJECTIVES)
    qty = rng.randint(1, 9)
    return {"prompt": f"Item: {qty} x {adj} {item}\nDepartment code:", "completion": f" {code}"}


FIRST = ["Ana", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Iris", "Jonas", "Kai", "Lena"]
CITIES = ["Denver", "Lisbon", "Osaka", "Nairobi", "Toronto", "Krakow", "Austin", "Perth", "Quito", "Oslo"]
PRODUCTS = ["blue widget", "gear set", "desk lamp", "oak shelf", "tea sampler", "yoga mat", "bike pump"]


def order_extract(rng):
    """A sentence about an order -> 'id|quantity|product|city'."""
    oid, qty = rng.randint(10000, 99999), rng.randint(1, 20)
    who, city, prod = rng.choice(FIRST), rng.choice(CITIES), rng.choice(PRODUCTS)
    templates = [
        f"{who} placed order #{oid} for {qty} {prod} units, shipping to {city}.",
        f"Ship {qty} units of {prod} to {city} (order {oid}, customer {who}).",
        f"Order {oid}: {who} in {city} wants {qty} x {prod}.",
    ]
    text = rng.choice(templates)
    return {"prompt": f"Text: {text}\nRecord:", "completion": f" {oid}|{qty}|{prod}|{city}"}


TASKS = {"date-iso": date_iso, "category-code": category_code, "order-extract": order_extract}


def main():
    for name, make in TASKS.items():
        rng = random.Random(f"lora-{name}")
        seen, rows = set(), []
        while len(rows) < 360:
            r = make(rng)
            if r["prompt"] in seen:
                continue
            seen.add(r["prompt"])
            rows.append(r)
        out = HERE / name
        out.mkdir(exist_ok=True)
        for split, part in (("train", rows[:300]), ("eval", rows[300:])):
            with open(out / f"{split}.jsonl", "w") as f:
                for r in part:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
