/* A fake sysfs/dev tree under a temporary root, for the HAL backends'
 * tests (HAL_SYSFS_ROOT). Aborts on setup failures. */
#ifndef ESS_FAKETREE_H
#define ESS_FAKETREE_H

#include <stddef.h>

/* Writes value (no newline added) to root/rel, making the directories. */
void ft_write(const char *root, const char *rel, const char *value);
/* Reads root/rel into buf (trailing newline removed); "" when missing. */
const char *ft_read(const char *root, const char *rel, char *buf, size_t cap);
/* mkdir -p root/rel. */
void ft_mkdir(const char *root, const char *rel);
/* rm -rf root/rel (the hardware goes away). */
void ft_remove(const char *root, const char *rel);

#endif
