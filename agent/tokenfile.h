/* The one-time enrollment token file (first boot): a technician, or the
 * image build, puts the token on the boot partition; `essd provision` reads
 * it and deletes it after a successful enrollment, so nobody types it and
 * it cannot be used twice from the device.
 *
 * The file is untrusted input: a regular file (no symlink followed), at most
 * TOKENFILE_MAX bytes, the token on its first line, trailing blanks and a
 * CR/LF ignored, 1..128 printable ASCII bytes without spaces (the rule of
 * server.enroll_token). The token is a secret: it is read into guarded
 * memory and never appears in a message.
 *
 * Returns 0 or a negative errno; err receives a message naming the file. */
#ifndef ESS_TOKENFILE_H
#define ESS_TOKENFILE_H

#include <stddef.h>

#define TOKENFILE_MAX       4096 /* a token and a comment, never more */
#define TOKENFILE_TOKEN_MAX 128

/* Reads the token from path into *token: guarded memory (sodium_malloc),
 * NUL-terminated, to be released with tokenfile_free. -EINVAL: not a
 * regular file, too large, or no valid token on the first line. */
int tokenfile_read(const char *path, char **token, char *err, size_t errlen);
/* Wipes and releases a token from tokenfile_read. NULL is fine. */
void tokenfile_free(char *token);
/* Deletes the file after use (and syncs its directory, so a power cut right
 * after enrollment does not bring it back). -ENOENT when already gone. */
int tokenfile_consume(const char *path, char *err, size_t errlen);

#endif
