"""pysage's "Messaging across Processes", the Chef in Python: it joins a C++ main group (consumer.cpp)
as the remote group "chefs", cooks every `--every` seconds and sends the pancakes to the main group;
the C++ Consumer answers how many are on the table.

    /usr/bin/python3 examples/python/chef.py HOST PORT [--every SECONDS]

PYTHONPATH needs sage's python/ directory and the generated pancakes_sage module
(`sagec generate --lang python -o DIR schemas/pancakes.fbs`).
"""
import random
import sys
import time

import pancakes_sage as pancakes
import sagepeer


class Chef(sagepeer.Actor):
    subscriptions = [pancakes.FoodOnTableMessage, sagepeer.PeerDisconnected]

    def __init__(self, every):
        super().__init__()
        self.every = every
        self.last_sent = time.monotonic()
        self.done = False

    def update(self):
        # Every `every` seconds, this chef makes a random amount of pancakes.
        if time.monotonic() - self.last_sent > self.every:
            try:
                self.manager.queue_message_to_group("__main__", pancakes.FoodAvailableMessage(amount=random.randint(1, 10)))
            except sagepeer.SendError:  # the main group said bye: it takes no more
                pass
            self.last_sent = time.monotonic()

    def handle_FoodOnTableMessage(self, msg, sender):
        print("The consumer has eaten %d pancakes so far (told by %s)" % (msg.amount, sender.name), flush=True)

    def handle_PeerDisconnected(self, msg):
        print("The main group is gone: %s" % msg.reason, flush=True)
        self.done = True


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    every = float(sys.argv[sys.argv.index("--every") + 1]) if "--every" in sys.argv else 2.0
    mgr = sagepeer.Manager()
    mgr.register_messages(pancakes.wire_messages)
    chef = mgr.register_actor(Chef(every))
    mgr.join_as_group(host, port, "chefs")
    print("joined as group 'chefs'", flush=True)
    while not chef.done:
        mgr.tick()
        mgr.wait_for_next_tick(0.03)
    return 0


if __name__ == "__main__":
    sys.exit(main())
