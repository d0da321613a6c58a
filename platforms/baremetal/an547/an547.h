/* The board layer of the AN547 demo (startup.c): semihosting output and exit, and the RAM it can
 * measure (stack high-water mark, .data + .bss). */
#ifndef EMBER_PLATFORMS_BAREMETAL_AN547_AN547_H_
#define EMBER_PLATFORMS_BAREMETAL_AN547_AN547_H_

#include <stddef.h>

#define AN547_STACK_PAINT 0x5EA5EA5Eu

void an547_puts(const char* s);
__attribute__((noreturn)) void an547_exit(int code);
size_t an547_stack_used(void);
size_t an547_stack_size(void);
size_t an547_data_bss_bytes(void);

/* For images that use newlib's malloc (the kernel test and bench images): defines _sbrk over a
 * static heap of `bytes` in the SRAM (.arena); one use per image. */
#define AN547_SBRK_HEAP(bytes)                                                      \
  extern "C" void* _sbrk(ptrdiff_t incr) {                                          \
    alignas(8) static unsigned char heap[bytes] __attribute__((section(".arena"))); \
    static size_t used = 0;                                                         \
    if (incr < 0 || static_cast<size_t>(incr) > sizeof heap - used)                 \
      return reinterpret_cast<void*>(-1);                                           \
    void* p = heap + used;                                                          \
    used += static_cast<size_t>(incr);                                              \
    return p;                                                                       \
  }

#endif /* EMBER_PLATFORMS_BAREMETAL_AN547_AN547_H_ */
