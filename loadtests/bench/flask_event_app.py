"""Baseline: the article's Flask `/event` sample, rewritten here so the benchmark can post to it.

What the sample does per request: parse the JSON body, pick a handler by the event's `type`, call it, answer with
its result as JSON. The sample's route only allows GET (Flask's default); this one allows POST so a load generator
can send bodies, and dispatches from a dict instead of `globals()` so any type name is safe. Nothing else is added:
no validation, no storage, no dedup; that is the point of the comparison.
"""

from flask import Flask, jsonify, request

app = Flask(__name__)


def order_placed(data):
    return {"result": "handled order.placed"}


def order_cancelled(data):
    return {"result": "handled order.cancelled"}


HANDLERS = {"com.example.order.placed": order_placed, "com.example.order.cancelled": order_cancelled}


@app.route("/event", methods=["POST"])
def event():
    data = request.json
    handler = HANDLERS[data.get("type")]
    return jsonify(handler(data))
