"""The shared fault harness: a probe handler added to a bake, a load driver, and a counter of what was lost.

Used by the fault suites (tests/test_faults_*.py) against real bakes started with their CLI
(`service_process.ServiceProcess`). Three parts, one module each:

`faults.probe` -- the probe handler, added the way an author adds a handler:
    add_probe(project) -> Path
        Writes `handlers/probe.py` into the bake (one handler on `com.example.order.placed`) and registers it in
        `handlers/__init__.py` next to the example handlers. Returns the handlers directory.
    probe_env(log, *, delay=0.0, poison_flag=None) -> dict[str, str]
        The environment the probe reads: PROBE_LOG (the file it appends to), PROBE_DELAY (seconds each handling
        sleeps first; a slow handler), PROBE_POISON_FLAG (a path: while that file exists, events whose
        data.customer_id is "poison" raise a retryable error, so they are retried and dead-lettered; delete the
        file to "fix" the downstream, then `dlq replay`). An event whose data.customer_id is "slow:<seconds>" takes
        that long (one request kept in flight, with `Prefer: wait`).
    handled(log) -> collections.Counter[str]
        How often the probe handled each event id (one line per handling: `<id>\\t<pid>\\t<attempt>`, written with
        a single O_APPEND write, so lines from several processes never interleave and a kill -9 never leaves half
        a line counted).

`faults.load` -- the load driver:
    LoadDriver(urls, *, rate=100.0, threads=8, duplicates=0.0, concurrent_duplicates=0.5, keys=50, poison=0.0,
               run=None (a random 8-hex-digit run id), timeout=10.0, seed=19)
        Sends one structured-mode CloudEvent per request (order.placed, a unique id `<run>-<n>`, subject
        `k-<n % keys>`) at a steady total `rate` per second from `threads` threads, round robin over `urls` (a
        list, so two processes behind no balancer can share the load; the list may be changed while running by
        assigning `driver.urls`). `duplicates` is the share of sends that repeat an id already sent: of those,
        `concurrent_duplicates` go out at the same moment as the first send (from another thread), the rest later.
        `poison` is the share of events whose customer_id is "poison" (see PROBE_POISON_FLAG).
        Every send is recorded as a `Send(event_id, started, finished, status, retry_after, error_code)`: status is
        the HTTP status, or 0 when no answer came (connection refused or reset, timeout); a 503's `Retry-After`
        and its JSON `error` are kept.
        driver.start(); driver.stop() (waits for the threads; sends in flight finish);
        driver.run_for(seconds) (start, sleep, stop); driver.mark(name) -> records time.monotonic() under a name
        (e.g. "fault-end") for recovery times; driver.sends (append-only; driver.snapshot() copies it under the
        lock); driver.ids_sent(), driver.poisoned_ids().
    event(event_id, n, *, keys=50, poison=False, customer="c") -> the CloudEvent dict the driver sends;
    send_one(client, url, body, timeout=10.0) -> Send, one structured-mode POST outside the steady load.

`faults.counter` -- the figures:
    Tally.of(driver_or_sends, handled_counter, marks=None)
        sent (distinct ids sent), requests, accepted (distinct ids that got a 202 at least once), handled
        (distinct accepted-or-not ids the probe saw), lost (ids with a 202 the probe never handled: must be 0),
        handled_twice (ids the probe handled more than once), codes (Counter of statuses, 0 = no answer),
        retry_after_missing (503s without Retry-After), recovery_seconds(mark) (from the mark to the first 202 of
        a request sent after it), figures() -> a dict for printing, and str(tally) -> one line.
    wait_all_handled(log, ids, timeout) -> Counter: polls the probe log until every id in `ids` was handled (or the
        timeout passes) and returns the final count.
"""
