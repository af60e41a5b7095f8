/* Replays fuzz inputs through a target's LLVMFuzzerTestOneInput without libFuzzer,
 * so CI checks every committed corpus entry and past crasher with any compiler.
 *   replay_<target> DIR_OR_FILE...   (missing paths are skipped) */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static long replayed = 0;

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "replay: cannot open %s\n", path);
    return 1;
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc((size_t)n + 1);
  if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
    fclose(f);
    free(buf);
    return 1;
  }
  fclose(f);
  LLVMFuzzerTestOneInput(buf, (size_t)n);
  free(buf);
  replayed++;
  return 0;
}

static int replay_path(const char *path) {
  struct stat sb;
  if (stat(path, &sb) != 0)
    return 0;
  if (!S_ISDIR(sb.st_mode))
    return replay_file(path);
  DIR *d = opendir(path);
  if (!d)
    return 1;
  struct dirent *e;
  int bad = 0;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", path, e->d_name);
    bad |= replay_path(p);
  }
  closedir(d);
  return bad;
}

int main(int argc, char **argv) {
  int bad = 0;
  for (int i = 1; i < argc; i++)
    bad |= replay_path(argv[i]);
  printf("replayed %ld inputs\n", replayed);
  return bad;
}
