/* Strict JSON parser (RFC 8259) into a flat node table; see jsonparse.h. */
#include "jsonparse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parser {
  const unsigned char *s;
  int64_t len, pos;
  int max_depth;
  int64_t max_nodes;
  const char *label;
  int64_t base;
  re_json *j;
} parser;

static re_status fail_at(const parser *p, int64_t pos, const char *what) {
  return re_err(RE_EFORMAT, "%s, byte %lld: %s", p->label, (long long)(p->base + pos), what);
}

static void skip_ws(parser *p) {
  while (p->pos < p->len) {
    unsigned char c = p->s[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
      break;
    p->pos++;
  }
}

static re_status new_node(parser *p, re_json_type type, int64_t *idx) {
  re_json *j = p->j;
  if (j->count >= p->max_nodes) {
    char what[96];
    snprintf(what, sizeof what, "more than %lld JSON values", (long long)p->max_nodes);
    return fail_at(p, p->pos, what);
  }
  if (j->count == j->cap) {
    int64_t ncap = j->cap ? 2 * j->cap : 64;
    RE_TRY(re_realloc(&j->nodes, ncap, sizeof *j->nodes));
    j->cap = ncap;
  }
  re_json_node *n = &j->nodes[j->count];
  memset(n, 0, sizeof *n);
  n->type = type;
  n->pos = p->pos;
  n->first = n->next = -1;
  *idx = j->count++;
  return RE_OK;
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Four hex digits at s[pos..pos+4). */
static int read_hex4(const parser *p, int64_t pos, unsigned *out) {
  if (p->len - pos < 4)
    return 0;
  unsigned v = 0;
  for (int k = 0; k < 4; k++) {
    int h = hexval(p->s[pos + k]);
    if (h < 0)
      return 0;
    v = v * 16 + (unsigned)h;
  }
  *out = v;
  return 1;
}

static void put_utf8(re_json *j, unsigned cp) {
  char *o = j->strings + j->slen;
  if (cp < 0x80) {
    o[0] = (char)cp;
    j->slen += 1;
  } else if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    j->slen += 2;
  } else if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    j->slen += 3;
  } else {
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    j->slen += 4;
  }
}

/* Length of the valid UTF-8 sequence starting at s[pos] (a non-ASCII lead byte), 0 if invalid
 * (overlong forms, encoded surrogates and code points above U+10FFFF are invalid). */
static int utf8_seq(const parser *p, int64_t pos) {
  const unsigned char *s = p->s + pos;
  int64_t avail = p->len - pos;
  unsigned char c = s[0];
  int n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0)
      lo = 0xA0;
    if (c == 0xED)
      hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0)
      lo = 0x90;
    if (c == 0xF4)
      hi = 0x8F;
  } else {
    return 0;
  }
  if (avail < n)
    return 0;
  if (s[1] < lo || s[1] > hi)
    return 0;
  for (int k = 2; k < n; k++)
    if (s[k] < 0x80 || s[k] > 0xBF)
      return 0;
  return n;
}

/* Decode the string starting at the opening quote; *str and *slen get the decoded copy. */
static re_status parse_string(parser *p, const char **str, int64_t *slen) {
  re_json *j = p->j;
  int64_t start = j->slen;
  p->pos++; /* opening quote */
  for (;;) {
    if (p->pos >= p->len)
      return fail_at(p, p->pos, "unterminated string");
    unsigned char c = p->s[p->pos];
    if (c == '"') {
      p->pos++;
      break;
    }
    if (c < 0x20)
      return fail_at(p, p->pos, "control character inside a string (must be escaped)");
    if (c == '\\') {
      if (p->pos + 1 >= p->len)
        return fail_at(p, p->pos, "unterminated escape");
      unsigned char e = p->s[p->pos + 1];
      char simple = 0;
      switch (e) {
      case '"': simple = '"'; break;
      case '\\': simple = '\\'; break;
      case '/': simple = '/'; break;
      case 'b': simple = '\b'; break;
      case 'f': simple = '\f'; break;
      case 'n': simple = '\n'; break;
      case 'r': simple = '\r'; break;
      case 't': simple = '\t'; break;
      case 'u': break;
      default: return fail_at(p, p->pos, "invalid escape sequence");
      }
      if (simple) {
        j->strings[j->slen++] = simple;
        p->pos += 2;
        continue;
      }
      unsigned cp;
      if (!read_hex4(p, p->pos + 2, &cp))
        return fail_at(p, p->pos, "\\u must be followed by four hex digits");
      p->pos += 6;
      if (cp >= 0xDC00 && cp <= 0xDFFF)
        return fail_at(p, p->pos - 6, "unpaired low surrogate in \\u escape");
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        unsigned lo;
        if (p->len - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
            !read_hex4(p, p->pos + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
          return fail_at(p, p->pos - 6, "high surrogate not followed by a low surrogate \\u escape");
        p->pos += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      }
      put_utf8(j, cp);
      continue;
    }
    if (c < 0x80) {
      j->strings[j->slen++] = (char)c;
      p->pos++;
      continue;
    }
    int n = utf8_seq(p, p->pos);
    if (!n)
      return fail_at(p, p->pos, "invalid UTF-8 in string");
    memcpy(j->strings + j->slen, p->s + p->pos, (size_t)n);
    j->slen += n;
    p->pos += n;
  }
  j->strings[j->slen++] = '\0';
  *str = j->strings + start;
  *slen = j->slen - start - 1;
  return RE_OK;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static re_status parse_number(parser *p, re_json_node *n) {
  int64_t v = 0;
  int other = 0, big = 0;
  if (p->s[p->pos] == '-') {
    other = 1;
    p->pos++;
  }
  if (p->pos >= p->len || !is_digit(p->s[p->pos]))
    return fail_at(p, p->pos, "invalid number");
  if (p->s[p->pos] == '0') {
    p->pos++;
    if (p->pos < p->len && is_digit(p->s[p->pos]))
      return fail_at(p, p->pos - 1, "leading zeros are not allowed in numbers");
  } else {
    while (p->pos < p->len && is_digit(p->s[p->pos])) {
      int d = p->s[p->pos] - '0';
      if (!big && (v > (INT64_MAX - d) / 10))
        big = 1;
      if (!big)
        v = v * 10 + d;
      p->pos++;
    }
  }
  if (p->pos < p->len && p->s[p->pos] == '.') {
    other = 1;
    p->pos++;
    if (p->pos >= p->len || !is_digit(p->s[p->pos]))
      return fail_at(p, p->pos, "a fraction needs digits after '.'");
    while (p->pos < p->len && is_digit(p->s[p->pos]))
      p->pos++;
  }
  if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
    other = 1;
    p->pos++;
    if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
      p->pos++;
    if (p->pos >= p->len || !is_digit(p->s[p->pos]))
      return fail_at(p, p->pos, "an exponent needs digits");
    while (p->pos < p->len && is_digit(p->s[p->pos]))
      p->pos++;
  }
  n->num_kind = other ? RE_JSON_NUM_OTHER : big ? RE_JSON_NUM_BIG : RE_JSON_NUM_UINT;
  n->num = (other || big) ? 0 : v;
  return RE_OK;
}

static re_status parse_value(parser *p, int depth, int64_t *out);

static re_status parse_container(parser *p, int depth, int is_object, int64_t idx) {
  if (depth >= p->max_depth) {
    char what[96];
    snprintf(what, sizeof what, "nesting deeper than %d levels", p->max_depth);
    return fail_at(p, p->pos, what);
  }
  unsigned char close = is_object ? '}' : ']';
  p->pos++;
  skip_ws(p);
  if (p->pos < p->len && p->s[p->pos] == close) {
    p->pos++;
    return RE_OK;
  }
  int64_t last = -1, count = 0;
  for (;;) {
    const char *key = NULL;
    int64_t key_len = 0;
    if (is_object) {
      if (p->pos >= p->len || p->s[p->pos] != '"')
        return fail_at(p, p->pos, "expected a string as object key");
      RE_TRY(parse_string(p, &key, &key_len));
      skip_ws(p);
      if (p->pos >= p->len || p->s[p->pos] != ':')
        return fail_at(p, p->pos, "expected ':' after an object key");
      p->pos++;
      skip_ws(p);
    }
    int64_t child;
    RE_TRY(parse_value(p, depth + 1, &child));
    re_json_node *cn = &p->j->nodes[child];
    cn->key = key;
    cn->key_len = key_len;
    if (last < 0)
      p->j->nodes[idx].first = child;
    else
      p->j->nodes[last].next = child;
    last = child;
    count++;
    skip_ws(p);
    if (p->pos >= p->len)
      return fail_at(p, p->pos, is_object ? "unterminated object" : "unterminated array");
    if (p->s[p->pos] == ',') {
      p->pos++;
      skip_ws(p);
      continue;
    }
    if (p->s[p->pos] == close) {
      p->pos++;
      break;
    }
    return fail_at(p, p->pos, is_object ? "expected ',' or '}' after an object member"
                                        : "expected ',' or ']' after an array element");
  }
  p->j->nodes[idx].count = count;
  return RE_OK;
}

static int match_literal(const parser *p, const char *lit) {
  int64_t n = (int64_t)strlen(lit);
  return p->len - p->pos >= n && !memcmp(p->s + p->pos, lit, (size_t)n);
}

static re_status parse_value(parser *p, int depth, int64_t *out) {
  if (p->pos >= p->len)
    return fail_at(p, p->pos, "expected a value, found the end of the input");
  unsigned char c = p->s[p->pos];
  int64_t idx;
  switch (c) {
  case '{':
  case '[':
    RE_TRY(new_node(p, c == '{' ? RE_JSON_OBJECT : RE_JSON_ARRAY, &idx));
    RE_TRY(parse_container(p, depth, c == '{', idx));
    break;
  case '"': {
    RE_TRY(new_node(p, RE_JSON_STRING, &idx));
    const char *s;
    int64_t n;
    RE_TRY(parse_string(p, &s, &n));
    p->j->nodes[idx].str = s;
    p->j->nodes[idx].str_len = n;
    break;
  }
  case 't':
  case 'f':
  case 'n': {
    const char *lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
    if (!match_literal(p, lit))
      return fail_at(p, p->pos, "invalid literal (expected true, false or null)");
    RE_TRY(new_node(p, c == 't' ? RE_JSON_TRUE : c == 'f' ? RE_JSON_FALSE : RE_JSON_NULL, &idx));
    p->pos += (int64_t)strlen(lit);
    break;
  }
  default:
    if (c == '-' || is_digit(c)) {
      RE_TRY(new_node(p, RE_JSON_NUMBER, &idx));
      RE_TRY(parse_number(p, &p->j->nodes[idx]));
      break;
    }
    return fail_at(p, p->pos, "unexpected character where a value should start");
  }
  *out = idx;
  return RE_OK;
}

re_status re_json_parse(const char *buf, int64_t len, int max_depth, int64_t max_nodes, const char *label,
                        int64_t base_offset, re_json *out) {
  memset(out, 0, sizeof *out);
  parser p = {(const unsigned char *)buf, len, 0, max_depth, max_nodes, label, base_offset, out};
  /* decoded strings never outgrow the input: each string spends two quote bytes
   * and its escapes shrink, so len + 1 bytes hold every string and its NUL */
  re_status st = re_malloc(len + 1, 1, &out->strings);
  if (st != RE_OK)
    return st;
  out->scap = len + 1;
  skip_ws(&p);
  int64_t root;
  st = parse_value(&p, 0, &root);
  if (st == RE_OK) {
    skip_ws(&p);
    if (p.pos != p.len)
      st = fail_at(&p, p.pos, "unexpected bytes after the JSON value");
  }
  if (st != RE_OK)
    re_json_free(out);
  return st;
}

void re_json_free(re_json *j) {
  if (!j)
    return;
  free(j->nodes);
  free(j->strings);
  memset(j, 0, sizeof *j);
}
