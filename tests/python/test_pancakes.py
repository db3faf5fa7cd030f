"""The seed's pancake example with the Chef in Python as a remote group of a C++ main group
(examples/python: consumer.cpp is SAGE_PANCAKES, chef.py runs under /usr/bin/python3)."""
import os
import subprocess
import sys
import tempfile
import time
import unittest

import pancakes_sage as pancakes
import sagepeer

PANCAKES = os.environ["SAGE_PANCAKES"]
CHEF = os.path.join(os.environ["SAGE_SOURCE_DIR"], "examples/python/chef.py")
DEADLINE = 30.0


class Consumer:
    def __init__(self, tmp, meals, admit=()):
        self.out = os.path.join(tmp, "consumer.out")
        args = [PANCAKES, "--meals", str(meals)]
        for group in admit:
            args += ["--admit", group]
        with open(self.out, "w") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        end = time.monotonic() + DEADLINE
        self.port = None
        while self.port is None and time.monotonic() < end:
            for line in self.output().splitlines():
                if line.startswith("listening on port "):
                    self.port = int(line.split()[-1])
            time.sleep(0.02)
        assert self.port, "the consumer did not start"

    def output(self):
        with open(self.out) as f:
            return f.read()


class PancakesAcrossLanguages(unittest.TestCase):
    def test_a_python_chef_joins_a_cpp_main_group_as_a_remote_group_and_the_cpp_consumer_answers_it(self):
        with tempfile.TemporaryDirectory() as tmp:
            consumer = Consumer(tmp, 3)
            try:
                chef = subprocess.run([sys.executable, CHEF, "127.0.0.1", str(consumer.port), "--every", "0.1"],
                                      capture_output=True, text=True, timeout=DEADLINE)
                self.assertEqual(consumer.proc.wait(timeout=DEADLINE), 0, consumer.output())
            finally:
                if consumer.proc.poll() is None:
                    consumer.proc.kill()
                    consumer.proc.wait()
            out = consumer.output()
            self.assertEqual(out.count("Yummy! I had "), 3, out)
            self.assertIn("pancakes from chefs!", out)
            self.assertEqual(chef.returncode, 0, chef.stderr)
            told = [line for line in chef.stdout.splitlines() if line.startswith("The consumer has eaten")]
            self.assertEqual(len(told), 3, chef.stdout)
            eaten = int(out.split("done: ")[1].split()[0])
            self.assertIn("The consumer has eaten %d pancakes so far (told by __main__)" % eaten, told)
            self.assertIn("The main group is gone: bye from the main group", chef.stdout)

    def test_two_python_groups_of_a_cpp_main_group_reach_each_other_through_its_relay(self):
        class Node(sagepeer.Actor):
            subscriptions = [pancakes.FoodAvailableMessage, pancakes.FoodOnTableMessage]

            def __init__(self):
                super().__init__()
                self.got = []

            def handle_FoodAvailableMessage(self, msg, sender):
                self.got.append(("available", msg.amount, sender.name))

            def handle_FoodOnTableMessage(self, msg, sender):
                self.got.append(("on table", msg.amount, sender.name))
                # Answer whoever sent it (a relayed group: the main group relays the answer back).
                self.manager.queue_message_to_group(sender, pancakes.FoodAvailableMessage(amount=msg.amount + 1))

        with tempfile.TemporaryDirectory() as tmp:
            consumer = Consumer(tmp, 1000, admit=["waiters"])
            try:
                chef, waiter = sagepeer.Manager(), sagepeer.Manager()
                chef_node, waiter_node = chef.register_actor(Node()), waiter.register_actor(Node())
                for m in (chef, waiter):
                    m.register_messages(pancakes.wire_messages)
                chef.join_as_group("127.0.0.1", consumer.port, "chefs")
                waiter.join_as_group("127.0.0.1", consumer.port, "waiters")
                waiter.queue_message_to_group("chefs", pancakes.FoodOnTableMessage(amount=41))
                end = time.monotonic() + DEADLINE
                while not waiter_node.got and time.monotonic() < end:
                    for m in (chef, waiter):
                        m.tick()
                    chef.wait_for_next_tick(0.01)
                self.assertEqual(chef_node.got, [("on table", 41, "waiters")])
                self.assertEqual(waiter_node.got, [("available", 42, "chefs")])
                self.assertEqual(chef.stats["bad_input"] + waiter.stats["bad_input"], 0)
                self.assertNotIn("Yummy", consumer.output())  # relayed, not delivered to the main group
            finally:
                consumer.proc.kill()
                consumer.proc.wait()

    def test_joining_as_a_group_the_main_group_does_not_admit_fails_with_its_reason(self):
        with tempfile.TemporaryDirectory() as tmp:
            consumer = Consumer(tmp, 1)
            try:
                mgr = sagepeer.Manager()
                with self.assertRaisesRegex(sagepeer.NetworkError,
                                            "cannot join as group 'waiters': refused by the peer: not admitted"):
                    mgr.join_as_group("127.0.0.1", consumer.port, "waiters")
            finally:
                consumer.proc.kill()
                consumer.proc.wait()


if __name__ == "__main__":
    unittest.main()
