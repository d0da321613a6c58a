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

#endif /* EMBER_PLATFORMS_BAREMETAL_AN547_AN547_H_ */
