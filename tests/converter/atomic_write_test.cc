// ember-convert never loses or half-writes its output: killed with SIGKILL at random bytes of its
// output (a preloaded shim) and at random times, the destination is always the old file or the
// complete new one, and the next run removes the temporaries the killed ones left; past a
// file-size limit (a full disk) it fails with a clear message and the old file intact.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "support/cli.h"
#include "support/convert.h"
#include "writer.h"

extern char** environ;

namespace {

// A sanitizer build starts each converter several times slower: fewer runs there; the release
// suite makes the full count.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kByteKills = 40, kTimedKills = 20;
#else
constexpr int kByteKills = 200, kTimedKills = 60;
#endif

using ember_test::quote;
using ember_test::read_file;
using Bytes = std::vector<unsigned char>;

int count_temporaries(const std::string& dir) {
  int n = 0;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return -1;
  while (const dirent* e = ::readdir(d))
    if (std::string(e->d_name).find(ember::convert::kTempInfix) != std::string::npos) ++n;
  ::closedir(d);
  return n;
}

// Starts ember-convert with `args` and `extra_env`; kills it with SIGKILL after `kill_after_us`
// microseconds unless negative. Returns the wait status.
int spawn_convert(const std::vector<std::string>& args, const std::vector<std::string>& extra_env,
                  long kill_after_us) {
  std::vector<std::string> argv_s{ember_test::convert_bin()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(&a[0]);
  argv.push_back(nullptr);
  std::vector<std::string> env_s(extra_env);
  for (char** e = environ; *e; ++e) env_s.push_back(*e);  // the first definition wins
  std::vector<char*> envp;
  for (std::string& e : env_s) envp.push_back(&e[0]);
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  if (kill_after_us >= 0) {
    const timespec ts{kill_after_us / 1000000, (kill_after_us % 1000000) * 1000};
    ::nanosleep(&ts, nullptr);
    ::kill(pid, SIGKILL);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

class AtomicWrite : public ::testing::Test {
 protected:
  void SetUp() override {
    source_ = ember_test::shared_path("models/stories260K/hf");
    if (source_.empty()) GTEST_SKIP() << "needs ../shared/models/stories260K";
    dir_ = ember_test::make_temp_dir("atomic");
    dest_ = dir_ + "/model.ember";
    // The new file first (its provenance records this command line), then the old one over it.
    ASSERT_EQ(spawn_convert(new_args(), {}, -1), 0);
    new_ = read_file(dest_);
    ASSERT_EQ(spawn_convert({source_, "-o", dest_, "--quant", "f32", "--force"}, {}, -1), 0);
    old_ = read_file(dest_);
    ASSERT_NE(old_, new_);
  }
  std::vector<std::string> new_args() const {
    return {source_, "-o", dest_, "--quant", "u8", "--force"};
  }
  // The destination is the old file or the new one, byte for byte; returns which (0 or 1).
  int check_dest(const std::string& what) {
    const Bytes now = read_file(dest_);
    EXPECT_TRUE(now == old_ || now == new_)
        << what << ": the destination is neither file (" << now.size() << " bytes)";
    return now == new_ ? 1 : 0;
  }

  std::string source_, dir_, dest_;
  Bytes old_, new_;
};

TEST_F(AtomicWrite, SigkillAtRandomBytesLeavesOldOrNew) {
  std::mt19937_64 rng(20);
  const std::vector<std::string> env{"LD_PRELOAD=" EMBER_KILL_SHIM,
                                     "ASAN_OPTIONS=verify_asan_link_order=0"};
  const int kKills = kByteKills;
  for (int i = 0; i < kKills; ++i) {
    const uint64_t at = rng() % new_.size();
    const std::string what = "kill at byte " + std::to_string(at);
    const int status = spawn_convert(
        new_args(), {env[0], env[1], "EMBER_TEST_KILL_AFTER_BYTES=" + std::to_string(at)}, -1);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << what << ": status " << status;
    EXPECT_EQ(check_dest(what), 0) << what << ": killed before the rename, yet replaced";
    // This run's temporary is left; those of the runs before it were removed.
    EXPECT_EQ(count_temporaries(dir_), 1) << what;
  }
  ASSERT_EQ(spawn_convert(new_args(), {}, -1), 0);
  EXPECT_EQ(read_file(dest_), new_);
  EXPECT_EQ(count_temporaries(dir_), 0) << "a complete run leaves no temporary";
  std::printf("%d kills at random bytes of a %zu-byte output: the old file every time\n", kKills,
              new_.size());
}

TEST_F(AtomicWrite, SigkillAtRandomTimesLeavesOldOrNew) {
  // A whole run's duration, so that the kills land in every phase, the rename included.
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(spawn_convert(new_args(), {}, -1), 0);
  const long run_us = static_cast<long>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count());
  ember_test::write_file(dest_, old_.data(), old_.size());
  std::mt19937_64 rng(21);
  int replaced = 0;
  const int kKills = kTimedKills;
  for (int i = 0; i < kKills; ++i) {
    const long after = static_cast<long>(rng() % static_cast<uint64_t>(run_us + 1));
    spawn_convert(new_args(), {}, after);
    if (check_dest("kill after " + std::to_string(after) + " us") == 1) {
      ++replaced;
      ember_test::write_file(dest_, old_.data(), old_.size());
    }
    EXPECT_LE(count_temporaries(dir_), 1);
  }
  ASSERT_EQ(spawn_convert(new_args(), {}, -1), 0);
  EXPECT_EQ(count_temporaries(dir_), 0);
  std::printf("%d kills within a %ld us run: %d found the new file, %d the old\n", kKills, run_us,
              replaced, kKills - replaced);
}

TEST_F(AtomicWrite, FullDiskIsAClearErrorAndKeepsTheOldFile) {
  // ulimit -f counts 1024-byte blocks: a limit below the new file's size is a disk that fills.
  const std::string limit = std::to_string(new_.size() / 2048);
  const ember_test::Cmd r =
      ember_test::run("ulimit -f " + limit + "; " + quote(ember_test::convert_bin()) + " " +
                      quote(source_) + " -o " + quote(dest_) + " --quant u8 --force");
  ember_test::expect_clean_failure(r, "ulimit -f " + limit);
  EXPECT_NE(r.err.find("write failed (File too large)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nothing was replaced"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(dest_), old_);
  EXPECT_EQ(count_temporaries(dir_), 0);
}

TEST_F(AtomicWrite, StaleTemporariesGoButLockedOnesStay) {
  const std::string stale = dest_ + ember::convert::kTempInfix + "abcdef";
  const std::string live = dest_ + ember::convert::kTempInfix + "ghijkl";
  const std::string other = dir_ + "/other.ember" + ember::convert::kTempInfix + "mnopqr";
  for (const std::string& p : {stale, live, other}) ember_test::write_file(p, "x", 1);
  const int fd = ::open(live.c_str(), O_RDONLY);  // a writer still at work holds its lock
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  EXPECT_EQ(ember::convert::remove_stale_temporaries(dest_), 1);
  EXPECT_NE(::access(stale.c_str(), F_OK), 0);
  EXPECT_EQ(::access(live.c_str(), F_OK), 0);
  EXPECT_EQ(::access(other.c_str(), F_OK), 0) << "another output's temporary is not ours";
  ::close(fd);
  EXPECT_EQ(ember::convert::remove_stale_temporaries(dest_), 1);
}

}  // namespace
