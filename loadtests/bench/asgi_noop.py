"""Ceiling: the least an ASGI app can do per request (read the body, answer 202), to measure the server alone."""

RESPONSE_START = {"type": "http.response.start", "status": 202, "headers": [(b"content-type", b"application/json")]}
RESPONSE_BODY = {"type": "http.response.body", "body": b'{"accepted":1,"duplicates":0}'}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more_body = True
    while more_body:
        message = await receive()
        more_body = message.get("more_body", False)
    await send(RESPONSE_START)
    await send(RESPONSE_BODY)
