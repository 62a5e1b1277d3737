// The daemon's records: one file per lease and per daemon-set flag, written
// and read safely, damaged ones moved aside, an unsafe directory refused.
#include "state/record_store.hpp"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace promiscd;
using namespace promiscd::state;
namespace fs = std::filesystem;

namespace {

struct Dir {
    std::string path;
    Dir() {
        char tmpl[] = "/tmp/promiscd-records-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~Dir() { fs::remove_all(path); }
    std::string operator/(const std::string& n) const { return path + "/" + n; }
};

core::Lease lease(core::LeaseId id, const std::string& iface) {
    core::Lease l;
    l.id = id;
    l.interface = iface;
    l.owner = {"dbus", ":1.5", 1000, 42, "wireshark"};
    l.reason = "test";
    l.acquired = 123;
    l.expires = 456;
    return l;
}

void write(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
}

} // namespace

TEST(Records, LeasesAndFlagsRoundTrip) {
    Dir d;
    {
        RecordStore s(d.path);
        ASSERT_EQ(s.unusable(), "");
        s.begin("bus-1", 1);
        s.save_lease(lease(1, "eth0"));
        s.save_lease(lease(2, "v\xff\xfe"));
        s.save_flag(3, "eth0");
        s.save_flag(4, "v\xff\xfe");
        s.remove_lease(1);
        s.remove_flag(3);
    }
    RecordStore s(d.path);
    Records r = s.load();
    EXPECT_FALSE(r.unusable);
    EXPECT_EQ(r.bus_id, "bus-1");
    ASSERT_EQ(r.leases.size(), 1u);
    EXPECT_EQ(r.leases[0], lease(2, "v\xff\xfe")) << "names are bytes, kept as they are";
    ASSERT_EQ(r.flags.size(), 1u);
    EXPECT_EQ(r.flags[0], std::make_pair(4, std::string("v\xff\xfe")));
    EXPECT_GE(r.next_id, 2u + 1000) << "a block of ids is reserved ahead";
}

// A lease in another network namespace keeps the namespace as named, for
// the next run to open it again; flags keep the qualified name.
TEST(Records, NamespaceLeasesKeepTheirNamespace) {
    Dir d;
    auto l = lease(5, "4026532840/eth0");
    l.netns = "pid:4242";
    {
        RecordStore s(d.path);
        s.begin("bus-1", 1);
        s.save_lease(l);
        s.save_flag(1 << 30, "4026532840/eth0");
    }
    Records r = RecordStore(d.path).load();
    ASSERT_EQ(r.leases.size(), 1u);
    EXPECT_EQ(r.leases[0], l);
    EXPECT_EQ(r.damaged_leases, 0u);
    ASSERT_EQ(r.flags.size(), 1u);
    EXPECT_EQ(r.flags[0], std::make_pair(1 << 30, std::string("4026532840/eth0")));
}

// The flag set again after another agent cleared it: the record says the same
// and is not rewritten; once removed (or pruned), it is written again.
TEST(Records, AFlagRecordIsWrittenOncePerChange) {
    Dir d;
    RecordStore s(d.path);
    s.begin("", 1);
    auto ino = [&] {
        struct stat st {};
        return ::stat((d / "links/3").c_str(), &st) == 0 ? st.st_ino : ino_t(0);
    };
    s.save_flag(3, "eth0");
    const ino_t first = ino();
    ASSERT_NE(first, 0u);
    s.save_flag(3, "eth0");
    EXPECT_EQ(ino(), first) << "same text: not rewritten";
    s.save_flag(3, "eth1"); // renamed
    const ino_t renamed = ino();
    EXPECT_NE(renamed, first);
    s.remove_flag(3);
    EXPECT_EQ(ino(), 0u);
    s.save_flag(3, "eth1");
    EXPECT_NE(ino(), 0u) << "written again after removal";
    s.clear(); // prunes every flag record: none is backed
    EXPECT_EQ(ino(), 0u);
    s.save_flag(3, "eth1");
    EXPECT_NE(ino(), 0u) << "written again after a prune";
    Records r = RecordStore(d.path).load();
    ASSERT_EQ(r.flags.size(), 1u);
    EXPECT_EQ(r.flags[0], std::make_pair(3, std::string("eth1")));
}

TEST(Records, IdsAreReservedBeforeUse) {
    Dir d;
    RecordStore s(d.path);
    s.begin("", 1);
    s.save_lease(lease(5000, "eth0")); // past the first block
    Records r = RecordStore(d.path).load();
    EXPECT_GT(r.next_id, 5000u);
}

TEST(Records, DamagedRecordsAreMovedAsideAndCounted) {
    Dir d;
    {
        RecordStore s(d.path);
        s.begin("", 1);
        s.save_lease(lease(1, "eth0"));
        s.save_flag(2, "eth0");
    }
    write(d / "leases/1", "{ not json");
    write(d / "leases/7", R"({"version": 99, "id": 7})");
    write(d / "links/2", "[[[[[[[[[[[[[[[[[[[[[[[[[[");
    Records r = RecordStore(d.path).load();
    EXPECT_TRUE(r.leases.empty());
    EXPECT_EQ(r.damaged_leases, 2u) << "garbage and a future version";
    EXPECT_EQ(r.damaged_flags, std::vector<int>{2});
    EXPECT_FALSE(fs::exists(d / "leases/1"));
    int aside = 0;
    for (const auto& e : fs::directory_iterator(d / "leases"))
        aside += e.path().filename().string().find(".damaged-") != std::string::npos;
    EXPECT_EQ(aside, 2);
}

// Found by fuzz_records: brackets inside strings counted towards the nesting
// limit, so a lease whose reason (the client's) was "[[[[[" could not be read
// back after a crash: its record was taken for damaged.
TEST(Records, BracketsInStringsAreNotNesting) {
    core::Lease l = lease(9, "eth0");
    l.reason = "[[[[[ {{{{{ \"[[[[[ \\[";
    l.owner.command = "[[[[[[[[";
    EXPECT_EQ(RecordStore::lease_from_text(RecordStore::lease_to_text(l)), l);
    Dir d;
    {
        RecordStore s(d.path);
        s.begin("", 1);
        s.save_lease(l);
    }
    Records r = RecordStore(d.path).load();
    EXPECT_EQ(r.damaged_leases, 0u);
    ASSERT_EQ(r.leases.size(), 1u);
    EXPECT_EQ(r.leases[0], l);
    EXPECT_THROW(RecordStore::lease_from_text(R"({"version":2,"x":[[[[[1]]]]]})"),
                 service::RecordError)
        << "real nesting is still refused";
}

// Found by fuzz_records: nlohmann converts any number to the type asked for,
// so a damaged record with "uid": -1 was read as uid 4294967295, "uid":
// 4294967296 as uid 0 (root) and "pid": 1.5 as pid 1, instead of refused.
TEST(Records, NumbersAreReadAsWrittenOrRefused) {
    const std::string good = RecordStore::lease_to_text(lease(7, "eth0"));
    ASSERT_NO_THROW(RecordStore::lease_from_text(good));
    const std::pair<const char*, const char*> damaged[] = {
        {"\"uid\":1000", "\"uid\":-1"},
        {"\"uid\":1000", "\"uid\":4294967296"},
        {"\"uid\":1000", "\"uid\":1000.0"},
        {"\"pid\":42", "\"pid\":1.5"},
        {"\"id\":7", "\"id\":-7"},
        {"\"acquired\":123", "\"acquired\":1e3"},
        {"\"expires\":456", "\"expires\":-456"},
        {"\"version\":2", "\"version\":2.5"},
    };
    for (const auto& [from, to] : damaged) {
        std::string text = good;
        const auto at = text.find(from);
        ASSERT_NE(at, std::string::npos) << from << " in " << text;
        text.replace(at, std::string(from).size(), to);
        EXPECT_THROW(RecordStore::lease_from_text(text), service::RecordError) << text;
    }
}

TEST(Records, SymlinksAndFifosAreNotFollowed) {
    Dir d;
    Dir elsewhere;
    {
        RecordStore s(d.path);
        s.begin("", 1);
    }
    write(elsewhere / "secret", "do not touch");
    fs::create_symlink(elsewhere / "secret", d / "leases/3");
    ASSERT_EQ(::mkfifo((d / "leases/4").c_str(), 0600), 0);
    // A planted temporary name is not written through either.
    fs::create_symlink(elsewhere / "victim", d / "leases/.9.tmp");
    RecordStore s(d.path);
    Records r = s.load(); // must not hang on the FIFO
    EXPECT_EQ(r.damaged_leases, 2u);
    s.save_lease(lease(9, "eth0"));
    EXPECT_FALSE(fs::exists(elsewhere / "victim")) << "the symlink was replaced, not followed";
    EXPECT_EQ(std::ifstream(elsewhere / "secret").rdbuf()->sgetc(), 'd');
    EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(d / "leases/9")));
}

TEST(Records, UnsafeDirectoryIsRefused) {
    Dir d;
    ::chmod(d.path.c_str(), 0777);
    RecordStore s(d.path);
    EXPECT_NE(s.unusable().find("writable by group or others"), std::string::npos) << s.unusable();
    EXPECT_TRUE(s.load().unusable) << "nothing planted there is trusted";
    try {
        s.save_lease(lease(1, "eth0"));
        ADD_FAILURE() << "a lease was recorded in an unsafe directory";
    } catch (const service::RecordError& e) {
        EXPECT_NE(std::string(e.what()).find("cannot record lease state in " + d.path),
                  std::string::npos)
            << e.what();
    }
}

TEST(Records, SymlinkedDirectoryIsRefused) {
    Dir d;
    ::mkdir((d / "real").c_str(), 0700);
    fs::create_directory_symlink(d / "real", d / "link");
    RecordStore s(d / "link");
    EXPECT_NE(s.unusable().find("symbolic link"), std::string::npos) << s.unusable();
}

// The directory replaced (renamed away, a new one made) or removed while the
// daemon runs: the next write notices and records everything in force in
// what the path names now; a symlink or an unsafe directory put there is
// refused, at every write, until it is fixed.
TEST(Records, AReplacedDirectoryIsWrittenAgain) {
    Dir d;
    const std::string dir = d / "state";
    RecordStore s(dir);
    ASSERT_EQ(s.unusable(), "");
    std::vector<core::Lease> in_force = {lease(1, "eth0"), lease(2, "eth1")};
    s.set_lease_source([&] { return in_force; });
    s.begin("bus-1", 1);
    for (const auto& l : in_force)
        s.save_lease(l);
    s.save_flag(7, "eth0");

    fs::rename(dir, d / "old");
    ::mkdir(dir.c_str(), 0755);
    in_force.push_back(lease(3, "eth2"));
    s.save_lease(in_force.back());
    Records r = RecordStore(dir).load();
    EXPECT_EQ(r.bus_id, "bus-1");
    ASSERT_EQ(r.leases.size(), 3u);
    ASSERT_EQ(r.flags.size(), 1u);
    EXPECT_EQ(r.flags[0], std::make_pair(7, std::string("eth0")));
    EXPECT_GE(r.next_id, 4u);

    // Removed: made again.
    fs::remove_all(dir);
    s.save_flag(8, "eth1");
    r = RecordStore(dir).load();
    EXPECT_EQ(r.leases.size(), 3u);
    EXPECT_EQ(r.flags.size(), 2u);

    // A symbolic link put in its place: refused, and again at the next
    // write; once a safe directory is back, everything is written there.
    fs::remove_all(dir);
    fs::create_directory_symlink(d / "old", dir);
    EXPECT_THROW(s.save_lease(lease(4, "eth3")), service::RecordError);
    EXPECT_THROW(s.save_flag(9, "eth3"), service::RecordError);
    EXPECT_EQ(RecordStore(d / "old").load().leases.size(), 2u) << "nothing through the link";
    fs::remove(dir);
    ::mkdir(dir.c_str(), 0755);
    s.save_flag(9, "eth3");
    r = RecordStore(dir).load();
    EXPECT_EQ(r.leases.size(), 3u);
    EXPECT_EQ(r.flags.size(), 3u);
}

TEST(Records, ClearRemovesEverything) {
    Dir d;
    RecordStore s(d.path);
    s.begin("", 1);
    s.save_lease(lease(1, "eth0"));
    s.save_flag(2, "eth0");
    s.clear();
    EXPECT_TRUE(fs::is_empty(d / "leases"));
    EXPECT_TRUE(fs::is_empty(d / "links"));
}

// Records are written by hand (state/json_text): whatever the strings hold,
// the text parses, and says what nlohmann would have written.
TEST(Records, HandWrittenTextIsJsonForAnyBytes) {
    const std::string samples[] = {
        "",
        "plain",
        "quote \" backslash \\ slash /",
        std::string("nul \0 inside", 12),
        "controls \x01\x1f\n\t\r\b\f",
        "utf-8 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d",
        "bad \xff\xfe bytes",
        "truncated \xe2\x82",
        "overlong \xc0\xaf and surrogate \xed\xa0\x80",
        "past U+10FFFF \xf4\x90\x80\x80",
        "cut four \xf0\x9f\x90 and \xe0\x80\x80 and \xf8\x88\x80\x80\x80 end",
        "\xc3",
    };
    for (const auto& s : samples) {
        core::Lease l = lease(7, "eth0");
        l.owner.command = s;
        l.reason = s;
        const std::string text = RecordStore::lease_to_text(l);
        ASSERT_EQ(text.back(), '\n');
        nlohmann::json j;
        ASSERT_NO_THROW(j = nlohmann::json::parse(text)) << text;
        const std::string expected =
            nlohmann::json::parse(
                nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
                .get<std::string>();
        EXPECT_EQ(j["reason"].get<std::string>(), expected) << text;
        EXPECT_EQ(j["owner"]["command"].get<std::string>(), expected);
        if (expected == s) {
            EXPECT_EQ(RecordStore::lease_from_text(text), l) << "valid text round-trips";
        }
    }
}
