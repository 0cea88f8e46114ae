#include <pop3/pipeline.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace pop3;

namespace {
using cmd = pipelined_command<int>;

cmd make(int id, std::string wire, std::uint64_t expected = 0, bool barrier = false) {
    cmd c;
    c.payload = id;
    c.wire = std::move(wire);
    c.expected_reply = expected;
    c.barrier = barrier;
    return c;
}

// Admits everything the window allows; returns the ids let in.
std::vector<int> admit_all(pipeline<int>& p) {
    std::vector<int> ids;
    while (cmd* c = p.admissible()) {
        ids.push_back(c->payload);
        p.admit();
    }
    return ids;
}
}  // namespace

TEST_CASE("depth 1 is lock-step; replies are matched in order") {
    pipeline<int> p;
    p.set_depth(1);
    p.enqueue(make(1, "STAT\r\n"));
    p.enqueue(make(2, "LIST\r\n"));
    CHECK(admit_all(p) == std::vector<int>{1});
    CHECK(p.pending_output() == "STAT\r\n");
    p.on_written(6);
    CHECK(p.front_in_flight()->payload == 1);
    CHECK(p.answered().payload == 1);
    CHECK(admit_all(p) == std::vector<int>{2});
    CHECK(p.pending_output() == "LIST\r\n");
}

TEST_CASE("a window of N joins commands into one write, with partial writes of 1, 7, 0 and 31 bytes") {
    pipeline<int> p;
    p.set_depth(5);
    for (int i = 1; i <= 6; ++i) p.enqueue(make(i, "RETR " + std::to_string(i) + "\r\n"));  // 8 bytes each
    CHECK(admit_all(p) == std::vector<int>{1, 2, 3, 4, 5});
    CHECK(p.waiting() == 1);
    CHECK(p.pending_output() == "RETR 1\r\nRETR 2\r\nRETR 3\r\nRETR 4\r\nRETR 5\r\n");

    p.on_written(1);
    CHECK(p.pending_output().substr(0, 7) == "ETR 1\r\n");
    CHECK(!p.written(0));
    p.on_written(7);  // the rest of RETR 1
    CHECK(p.written(0));
    CHECK(!p.written(1));
    p.on_written(0);
    CHECK(p.pending_output().size() == 32);
    // The reply to RETR 1 frees a slot while the others are still unwritten.
    CHECK(p.answered().payload == 1);
    CHECK(admit_all(p) == std::vector<int>{6});
    CHECK(p.pending_output().size() == 40);
    p.on_written(31);  // RETR 2-4 whole, RETR 5 but its LF
    CHECK(p.written(2));
    CHECK(!p.written(3));
    CHECK(p.pending_output() == "\nRETR 6\r\n");
    p.on_written(9);
    CHECK(p.written(4));
    CHECK(p.pending_output().empty());
}

TEST_CASE("written() tracks each command's last byte across many partial writes") {
    pipeline<int> p;
    p.set_depth(10);
    for (int i = 1; i <= 4; ++i) p.enqueue(make(i, "NOOP\r\n"));  // 6 bytes each
    admit_all(p);
    for (std::size_t step : {1u, 7u, 0u, 10u}) p.on_written(step);  // 18 bytes
    CHECK(p.written(0));
    CHECK(p.written(1));
    CHECK(p.written(2));
    CHECK(!p.written(3));
    CHECK(p.pending_output() == "NOOP\r\n");
    p.on_written(6);
    CHECK(p.written(3));
    CHECK(p.pending_output().empty());
}

TEST_CASE("a barrier lets nothing in behind it until answered") {
    pipeline<int> p;
    p.set_depth(64);
    p.enqueue(make(1, "USER a\r\n"));
    p.enqueue(make(2, "PASS b\r\n", 0, true));
    p.enqueue(make(3, "STAT\r\n"));
    CHECK(admit_all(p) == std::vector<int>{1, 2});
    p.on_written(p.pending_output().size());
    p.answered();
    CHECK(admit_all(p).empty());
    p.answered();
    CHECK(admit_all(p) == std::vector<int>{3});
}

TEST_CASE("the reply byte budget, with one command always admitted") {
    pipeline<int> p;
    p.set_depth(64);
    p.set_byte_budget(10000);
    p.enqueue(make(1, "RETR 1\r\n", 6000));
    p.enqueue(make(2, "RETR 2\r\n", 3000));
    p.enqueue(make(3, "RETR 3\r\n", 2000));
    p.enqueue(make(4, "RETR 4\r\n", 50000));
    CHECK(admit_all(p) == std::vector<int>{1, 2});
    CHECK(p.bytes_in_flight() == 9000);
    p.answered();
    CHECK(admit_all(p) == std::vector<int>{3});
    p.answered();
    p.answered();
    CHECK(admit_all(p) == std::vector<int>{4});  // alone, over budget
    CHECK(p.bytes_in_flight() == 50000);
}

TEST_CASE("cancelling: waiting commands are removed, in-flight ones abandoned") {
    pipeline<int> p;
    p.set_depth(2);
    for (int i = 1; i <= 4; ++i) p.enqueue(make(i, "DELE " + std::to_string(i) + "\r\n"));
    admit_all(p);
    std::vector<int> cancelled;
    auto record = [&](int id) { cancelled.push_back(id); };
    CHECK(p.cancel_where([](int id) { return id == 3; }, record) == 1);
    CHECK(p.waiting() == 1);
    CHECK(p.cancel_where([](int id) { return id == 2 || id == 4; }, record) == 2);
    CHECK(cancelled == std::vector<int>{3, 2, 4});
    CHECK(p.in_flight() == 2);  // 2 is still in flight: its reply will come
    CHECK(p.waiting() == 0);
    // Cancelling an abandoned command again does nothing.
    CHECK(p.cancel_where([](int id) { return id == 2; }, record) == 0);
    p.answered();
    CHECK(p.front_in_flight()->payload == 2);
    CHECK(p.front_in_flight()->abandoned);
    CHECK(p.cancel_where([](int id) { return id == 9; }, record) == 0);
}

TEST_CASE("a command refused at admission never reaches the output") {
    pipeline<int> p;
    p.set_depth(4);
    p.enqueue(make(1, "STAT\r\n"));
    p.enqueue(make(2, "NOOP\r\n"));
    REQUIRE(p.admissible()->payload == 1);
    CHECK(p.drop_waiting().payload == 1);
    CHECK(admit_all(p) == std::vector<int>{2});
    CHECK(p.pending_output() == "NOOP\r\n");
}

TEST_CASE("take_all empties everything in order") {
    pipeline<int> p;
    p.set_depth(1);
    for (int i = 1; i <= 3; ++i) p.enqueue(make(i, "NOOP\r\n"));
    admit_all(p);
    auto all = p.take_all();
    REQUIRE(all.size() == 3);
    CHECK(all[0].payload == 1);
    CHECK(all[2].payload == 3);
    CHECK(p.empty());
    CHECK(p.pending_output().empty());
}

TEST_CASE("a command admitted behind an unanswered one is marked pipelined") {
    pipeline<int> p;
    p.set_depth(4);
    p.enqueue(make(1, "USER u\r\n"));
    p.enqueue(make(2, "PASS p\r\n"));
    CHECK(admit_all(p) == std::vector<int>{1, 2});
    CHECK(!p.front_in_flight()->pipelined);  // sent alone
    CHECK(p.answered().payload == 1);
    CHECK(p.front_in_flight()->pipelined);  // sent behind USER
    CHECK(p.answered().payload == 2);
    p.enqueue(make(3, "STAT\r\n"));
    CHECK(admit_all(p) == std::vector<int>{3});
    CHECK(!p.front_in_flight()->pipelined);  // nothing was unanswered when it went in
}

TEST_CASE("a busy window is refilled an eighth of its depth at a time, so one write carries many commands") {
    pipeline<int> p;
    p.set_depth(32);
    CHECK(p.refill_step() == 4);
    for (int i = 1; i <= 60; ++i) p.enqueue(make(i, "RETR " + std::to_string(i) + "\r\n"));
    CHECK(admit_all(p).size() == 32);  // an idle window fills at once
    p.on_written(p.pending_output().size());
    // Three replies free three slots: not yet a step's worth.
    for (int i = 1; i <= 3; ++i) {
        CHECK(p.answered().payload == i);
        CHECK(admit_all(p).empty());
    }
    CHECK(p.pending_output().empty());
    // The fourth makes a step: four commands go in, in one write.
    CHECK(p.answered().payload == 4);
    CHECK(admit_all(p) == std::vector<int>{33, 34, 35, 36});
    CHECK(p.pending_output() == "RETR 33\r\nRETR 34\r\nRETR 35\r\nRETR 36\r\n");
    CHECK(p.in_flight() == 32);
    // A refill takes all the room there is, more than a step.
    p.on_written(p.pending_output().size());
    for (int i = 5; i <= 10; ++i) CHECK(p.answered().payload == i);
    CHECK(admit_all(p) == std::vector<int>{37, 38, 39, 40, 41, 42});
}

TEST_CASE("fewer commands waiting than a refill step go in as soon as they fit") {
    pipeline<int> p;
    p.set_depth(64);  // a step of 8
    for (int i = 1; i <= 64; ++i) p.enqueue(make(i, "NOOP\r\n"));
    CHECK(admit_all(p).size() == 64);
    p.enqueue(make(65, "STAT\r\n"));
    p.enqueue(make(66, "LIST\r\n"));
    CHECK(p.answered().payload == 1);
    CHECK(admit_all(p).empty());  // one slot, two waiting
    CHECK(p.answered().payload == 2);
    CHECK(admit_all(p) == std::vector<int>{65, 66});
    // A lone command behind a busy window waits for one slot only.
    p.enqueue(make(67, "UIDL\r\n"));
    CHECK(admit_all(p).empty());  // the window is full
    CHECK(p.answered().payload == 3);
    CHECK(admit_all(p) == std::vector<int>{67});
}
