/* Startup for the Cortex-M55 of the MPS3 AN547 (an547.ld): the vector table, the reset handler
 * (FPU and Helium on, .data copied from flash, .bss zeroed, the stack painted to measure its
 * high-water mark, C++ constructors, main) and semihosting output and exit (qemu:
 * -semihosting-config enable=on,target=native). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "an547.h"

extern uint32_t __stack_top[], __stack_limit[];
extern uint8_t __data_start[], __data_end[], __data_load[], __bss_start[], __bss_end[];
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);
int main(void);
void ember_reset(void);

static void fault(void) {
  an547_puts("fault\n");
  an547_exit(3);
}

/* Initial stack pointer, reset, NMI, HardFault, MemManage, BusFault, UsageFault, SecureFault. */
__attribute__((section(".vectors"), used)) static void* const vectors[8] = {
    __stack_top,  (void*)ember_reset, (void*)fault, (void*)fault,
    (void*)fault, (void*)fault,       (void*)fault, (void*)fault};

static int semihost(int op, const void* arg) {
  register int r0 __asm__("r0") = op;
  register const void* r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void an547_puts(const char* s) { semihost(0x04, s); /* SYS_WRITE0 */ }

void an547_exit(int code) {
  /* SYS_EXIT with ADP_Stopped_ApplicationExit and the status (the extended form qemu accepts). */
  const uint32_t block[2] = {0x20026u, (uint32_t)code};
  semihost(0x20, block); /* SYS_EXIT_EXTENDED */
  semihost(0x18, (const void*)(uintptr_t)0x20026u);
  for (;;) {
  }
}

size_t an547_stack_used(void) {
  const uint32_t* p = __stack_limit;
  while (p < __stack_top && *p == AN547_STACK_PAINT) ++p;
  return (size_t)((const uint8_t*)__stack_top - (const uint8_t*)p);
}

size_t an547_stack_size(void) {
  return (size_t)((const uint8_t*)__stack_top - (const uint8_t*)__stack_limit);
}

size_t an547_data_bss_bytes(void) {
  return (size_t)(__data_end - __data_start) + (size_t)(__bss_end - __bss_start);
}

__attribute__((noreturn)) void ember_reset(void) {
  /* CP10/CP11 (FPU and MVE) full access, then wait for it to take effect. */
  volatile uint32_t* cpacr = (volatile uint32_t*)0xE000ED88u;
  *cpacr |= 0xFu << 20;
  __asm__ volatile("dsb\n\tisb" ::: "memory");
  memcpy(__data_start, __data_load, (size_t)(__data_end - __data_start));
  memset(__bss_start, 0, (size_t)(__bss_end - __bss_start));
  /* Paint the stack below the current frame (the reset handler uses a few words at the top). */
  uint32_t* sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  for (uint32_t* p = __stack_limit; p < sp - 16; ++p) *p = AN547_STACK_PAINT;
  for (void (**f)(void) = __init_array_start; f < __init_array_end; ++f) (*f)();
  an547_exit(main());
}

/* newlib's stdio, where the runtime formats a message: writes go to semihosting. */
int _write(int fd, const char* buf, int len) {
  (void)fd;
  for (int i = 0; i < len; ++i) {
    const char c[2] = {buf[i], 0};
    an547_puts(c);
  }
  return len;
}
