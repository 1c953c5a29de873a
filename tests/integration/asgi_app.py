"""A small ASGI app for the uvicorn tests (served by uvicorn in a child process)."""
import asyncio
import json


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http"
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    if path == "/info":
        loop = asyncio.get_running_loop()
        payload = json.dumps({"loop": "%s.%s" % (type(loop).__module__, type(loop).__qualname__),
                              "client_port": scope["client"][1],
                              "http_version": scope["http_version"]}).encode()
        ctype = b"application/json"
    elif path == "/echo":
        payload, ctype = body[::-1], b"application/octet-stream"
    elif path == "/slow":
        await asyncio.sleep(float(dict(p.split("=") for p in scope["query_string"].decode().split("&") if p).get("s", "1")))
        payload, ctype = b"slow done", b"text/plain"
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for i in range(5):
            await send({"type": "http.response.body", "body": b"part %d\n" % i, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
        return
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"not found"})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", ctype),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})
