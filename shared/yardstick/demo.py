"""Demo activity for a newcomer's `make run`: tokens and kiosk ratings through the real APIs."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from yardstick.city import CityProfile
from yardstick.tokens import Registry

INTAKE_PORT = 8001


async def seed(*, registry: Registry, city: CityProfile, host: str = "127.0.0.1", days: int = 20,
               scale: float = 1.0, seed_value: int = 7) -> dict[str, int]:
    """Post a few weeks of kiosk ratings, each window with its own mood, via POST /v1/ratings."""
    rng = random.Random(seed_value)
    commission, _ = await registry.issue(role="commission", subject="demo-commission")
    (registry.settings.data_dir / "commission-token").write_text(commission + "\n")
    now = datetime.now(UTC)
    totals = {"accepted": 0, "duplicates": 0, "suppressed": 0, "rejected": 0}
    windows = list(city.windows)
    async with httpx.AsyncClient(base_url=f"http://{host}:{INTAKE_PORT}", timeout=30) as client:
        for window in windows:
            token, _ = await registry.issue(role="kiosk", subject=f"kiosk-{window.id}", window_id=window.id)
            mood = rng.uniform(0.55, 0.95)  # share of satisfied presses at this window
            count = max(1, int(rng.randint(5, 25) * scale))
            items = []
            for _ in range(count):
                at = now - timedelta(days=rng.uniform(0, days - 0.01), seconds=rng.randint(0, 3600))
                level = rng.choice([4, 5]) if rng.random() < mood else rng.choice([1, 2, 3])
                items.append({"id": str(uuid.uuid4()), "window_id": window.id, "level": level,
                              "rated_at": at.isoformat()})
            for start in range(0, len(items), 500):
                r = await client.post("/v1/ratings", json={"ratings": items[start:start + 500]},
                                      headers={"Authorization": f"Bearer {token}"})
                r.raise_for_status()
                body = r.json()
                for key in ("accepted", "duplicates", "suppressed"):
                    totals[key] += body[key]
                totals["rejected"] += len(body["rejected"])
    return totals
