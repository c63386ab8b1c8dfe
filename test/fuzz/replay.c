/*
 * replay.c -- a plain main() for the fuzz targets, without libFuzzer.
 *
 *   fuzz_replay_<target> FILE...
 *
 * Linked with one target's LLVMFuzzerTestOneInput (fuzz.mk builds
 * build/fuzz_replay_<target> with gcc, and build/asan/... under ASan), it
 * runs each file through the target once, in order, the way libFuzzer
 * would replay a crash file.  test/fuzz.test uses it so that `make test`
 * re-runs every seed and every saved regression input without clang; a
 * target that finds a problem aborts, so the test sees a non-zero exit.
 * Prints "N inputs replayed" last and exits 0 when all ran.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The whole file in a malloc block of exactly its size (as libFuzzer
 * hands it over), so ASan builds see reads past the end. */
static uint8_t *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap);
  while (buf) {
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (n < cap) break;
    uint8_t *nb = realloc(buf, cap *= 2);
    if (!nb) free(buf);
    buf = nb;
  }
  int bad = ferror(f);
  fclose(f);
  if (!buf || bad) {
    free(buf);
    return NULL;
  }
  uint8_t *exact = malloc(n ? n : 1);
  if (exact) memcpy(exact, buf, n);
  free(buf);
  *len = n;
  return exact;
}

int main(int argc, char **argv) {
  int n = 0;
  for (int i = 1; i < argc; i++) {
    size_t len = 0;
    uint8_t *data = read_file(argv[i], &len);
    if (!data) {
      fprintf(stderr, "%s: cannot read %s\n", argv[0], argv[i]);
      return 2;
    }
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    n++;
  }
  printf("%d inputs replayed\n", n);
  /* Before LeakSanitizer's exit-time report, which may end the process. */
  fflush(stdout);
  return 0;
}
