"""Ray Serve 2.60 serving a torch 4-64-64-2 policy at POST / (the reference for bench/serve.sh).

Usage: python bench/serve_ray.py PORT   (prints READY when the deployment answers; runs until killed)
"""
import sys
import time

import torch
from ray import serve
from starlette.requests import Request


@serve.deployment(num_replicas=1)
class Policy:
    def __init__(self):
        torch.manual_seed(0)
        torch.set_num_threads(1)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, 64), torch.nn.Tanh(),
            torch.nn.Linear(64, 64), torch.nn.Tanh(),
            torch.nn.Linear(64, 2),
        )

    async def __call__(self, request: Request):
        body = await request.json()
        with torch.no_grad():
            logits = self.net(torch.tensor([body["observation"]], dtype=torch.float32))
        return {"action": int(logits.argmax(dim=1)[0])}


if __name__ == "__main__":
    port = int(sys.argv[1])
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(Policy.bind(), route_prefix="/")
    print("READY", flush=True)
    while True:
        time.sleep(3600)
