"""The websocket side of ASGI, spoken directly to an application (channels.testing needs
daphne, which kefu does not install)."""

from __future__ import annotations

import json

from asgiref.testing import ApplicationCommunicator


class WebsocketCommunicator(ApplicationCommunicator):
    def __init__(self, app, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(
            app,
            {
                "type": "websocket",
                "path": path,
                "headers": headers or [],
                "subprotocols": [],
                "client": ("127.0.0.1", 50000),
            },
        )

    async def connect(self, timeout: float = 2) -> tuple[bool, int | None]:
        await self.send_input({"type": "websocket.connect"})
        answer = await self.receive_output(timeout)
        if answer["type"] == "websocket.close":
            return False, answer.get("code")
        return True, None

    async def send_json_to(self, data: dict) -> None:
        await self.send_input({"type": "websocket.receive", "text": json.dumps(data)})

    async def receive_json_from(self, timeout: float = 1) -> dict:
        answer = await self.receive_output(timeout)
        return json.loads(answer["text"])

    async def disconnect(self, code: int = 1000) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(1)


async def received(communicator, timeout=1.0) -> list[dict]:
    """Everything sent until the socket stays quiet (``timeout`` first, then 0.2 s)."""
    frames = []
    while not await communicator.receive_nothing(timeout=timeout):
        frames.append(await communicator.receive_json_from())
        timeout = 0.2
    return frames
