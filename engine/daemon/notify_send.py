"""`python -m engine.daemon.notify_send`: send a few notifications to one URL through apprise, then exit.

The supervisor's notifier runs this as a short-lived child per URL and burst of messages, with a hard time
limit, so a service that hangs or a plugin that ignores its timeouts can never hold the supervisor. The URL
comes on stdin (JSON: url, timeout, messages: [{title, body, type}]), never in argv, where `ps` would show its
secrets. It prints nothing that could hold the URL: one character per message on stdout as each is done
(`1` sent, `0` refused), and an exit code (see EXITS). Imports only the stdlib and apprise, so it starts
fast (one child per burst, not per message: a sweep that fails at once costs one start per URL).
"""

from __future__ import annotations

import json
import logging
import sys

EXIT_SENT = 0
EXIT_REFUSED = 1  # the service answered with an error, or could not be reached
EXIT_BAD_URL = 3  # apprise does not know this URL
EXIT_NO_APPRISE = 4
EXIT_CRASHED = 5
EXITS = {
    EXIT_REFUSED: "the service refused it or could not be reached",
    EXIT_BAD_URL: "apprise does not know this URL",
    EXIT_NO_APPRISE: "apprise is not installed in the supervisor's Python",
    EXIT_CRASHED: "apprise raised an error",
}


def main() -> int:
    logging.disable(logging.CRITICAL)  # apprise logs URLs, and its messages go nowhere anyway
    try:
        data = json.loads(sys.stdin.read())
        url = str(data["url"])
        messages = [(str(m["title"]), str(m["body"]), str(m.get("type") or "info")) for m in data["messages"]]
        timeout = float(data.get("timeout") or 0)
    except (ValueError, KeyError, TypeError):
        return EXIT_CRASHED
    try:
        import apprise
    except ImportError:
        return EXIT_NO_APPRISE
    try:
        sender = apprise.Apprise()
        if not sender.add(url):
            return EXIT_BAD_URL
        if timeout > 0:  # wait on the service as long as our parent lets us (apprise's own default: 4 s)
            for plugin in sender:
                if hasattr(plugin, "socket_read_timeout"):
                    plugin.socket_read_timeout = timeout
    except Exception:  # a plugin's bug must end here with a code, not a traceback naming the URL
        return EXIT_CRASHED
    all_sent = True
    for title, body, kind in messages:
        try:
            sent = bool(sender.notify(title=title, body=body, notify_type=kind))
        except Exception:
            sent = False
        all_sent = all_sent and sent
        sys.stdout.write("1" if sent else "0")
        sys.stdout.flush()
    return EXIT_SENT if all_sent else EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
