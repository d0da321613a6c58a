/* A QEMU TCG plugin that counts executed guest instructions (Debian's qemu-system-arm 7.2 loads
 * plugins but ships none): the measure .ci/m55-insn-count uses for the Cortex-M55 kernels. Build:
 *   gcc -shared -fPIC -O2 -o insn_count.so tests/bench/qemu_insn_count.c
 *   qemu-system-arm ... -plugin ./insn_count.so,mark=0xADDR,range=0xLO:0xHI -d plugin
 * Prints at exit the instructions executed in all, and in the [LO, HI) ranges given (up to 64);
 * with mark=ADDR, also "insns: N" each time the instruction at ADDR runs, N counted since the
 * previous mark (a guest brackets the code to measure with calls to a marker function).
 * The few declarations below are of QEMU's plugin API, version 1 (include/qemu/qemu-plugin.h),
 * written out so that no QEMU headers are needed. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct {
  const char* target_name;
  struct {
    int min, cur;
  } version;
  bool system_emulation;
} qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                           void (*cb)(qemu_plugin_id_t, struct qemu_plugin_tb*));
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn* insn,
                                                enum qemu_plugin_op op, void* ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn* insn,
                                            void (*cb)(unsigned int, void*),
                                            enum qemu_plugin_cb_flags flags, void* userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, void (*cb)(qemu_plugin_id_t, void*),
                                    void* userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb* tb);
struct qemu_plugin_insn* qemu_plugin_tb_get_insn(const struct qemu_plugin_tb* tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn* insn);
void qemu_plugin_outs(const char* string);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

static uint64_t total, in_ranges, at_mark;
static uint64_t lo[64], hi[64], mark = UINT64_MAX;
static int n_ranges;

static void on_mark(unsigned int vcpu, void* user) {
  (void)vcpu;
  (void)user;
  char line[64];
  snprintf(line, sizeof line, "insns: %" PRIu64 "\n", total - at_mark);
  qemu_plugin_outs(line);
  at_mark = total;
}

static void on_tb(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
  (void)id;
  for (size_t i = 0; i < qemu_plugin_tb_n_insns(tb); ++i) {
    struct qemu_plugin_insn* insn = qemu_plugin_tb_get_insn(tb, i);
    const uint64_t pc = qemu_plugin_insn_vaddr(insn);
    if (pc == mark) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, 0, NULL);
    qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &total, 1);
    for (int r = 0; r < n_ranges; ++r) {
      if (pc >= lo[r] && pc < hi[r]) {
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &in_ranges, 1);
        break;
      }
    }
  }
}

static void on_atexit(qemu_plugin_id_t id, void* user) {
  (void)id;
  (void)user;
  char line[128];
  snprintf(line, sizeof line, "insns total: %" PRIu64 ", in ranges: %" PRIu64 "\n", total,
           in_ranges);
  qemu_plugin_outs(line);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const qemu_info_t* info, int argc,
                                                               char** argv) {
  (void)info;
  for (int i = 0; i < argc; ++i) {
    if (strncmp(argv[i], "mark=", 5) == 0) {
      mark = strtoull(argv[i] + 5, NULL, 0);
    } else if (strncmp(argv[i], "range=", 6) == 0 && n_ranges < 64) {
      char* end;
      lo[n_ranges] = strtoull(argv[i] + 6, &end, 0);
      hi[n_ranges] = *end == ':' ? strtoull(end + 1, NULL, 0) : 0;
      ++n_ranges;
    } else {
      fprintf(stderr, "insn_count: unknown argument %s\n", argv[i]);
      return 1;
    }
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb);
  qemu_plugin_register_atexit_cb(id, on_atexit, NULL);
  return 0;
}
