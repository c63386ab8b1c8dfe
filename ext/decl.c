/*
 * decl.c -- parse a model declaration into an mp_model.
 *
 * The arguments of CREATE VIRTUAL TABLE x USING modelpack(...) arrive as one
 * string per comma-separated item.  Each item is either an option
 * (`source = 'book_rows'`, `hooks = 'post_init'`) or a field
 * (`title TEXT NOT NULL HOOKED COLUMN book_title`).  Any mistake becomes an
 * error naming the model and the offending item, reported at CREATE.
 * Whether the source and its columns exist is checked by vtab.c, which has
 * the database connection.
 */
#include <ctype.h>
#include <string.h>

#include "mp_internal.h"
#include "mp_util.h"

enum { T_END, T_IDENT, T_STRING, T_EQ, T_DOT, T_OTHER };

typedef struct lexer {
  const char *z;
  int kind;
  char *text; /* unquoted token text (identifiers and strings) */
  int oom;    /* a token's text could not be copied: the parse must end in NOMEM */
} lexer;

static int is_ident_char(int c) {
  return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* Unquote a token delimited by `close`, undoubling it inside. */
static char *unquote(const char *z, int n, char close) {
  char *out = sqlite3_malloc(n + 1);
  int k = 0;
  if (!out) return NULL;
  for (int i = 1; i < n - 1; i++) {
    out[k++] = z[i];
    if (z[i] == close && close != ']') i++;
  }
  out[k] = 0;
  return out;
}

static int lex_next(lexer *lx) {
  const char *z = lx->z;
  sqlite3_free(lx->text);
  lx->text = NULL;
  while (isspace((unsigned char)*z)) z++;
  int n = 0;
  char close = 0;
  if (*z == 0) {
    lx->kind = T_END;
  } else if (*z == '=' || *z == '.') {
    lx->kind = *z == '=' ? T_EQ : T_DOT;
    n = 1;
  } else if (*z == '\'' || *z == '"' || *z == '`' || *z == '[') {
    close = *z == '[' ? ']' : *z;
    for (n = 1; z[n]; n++) {
      if (z[n] != close) continue;
      if (close != ']' && z[n + 1] == close) { n++; continue; }
      break;
    }
    if (!z[n]) { lx->kind = T_OTHER; lx->z = z + n; return T_OTHER; }
    n++;
    lx->kind = *z == '\'' ? T_STRING : T_IDENT;
    lx->text = unquote(z, n, close);
  } else if (is_ident_char((unsigned char)*z)) {
    while (is_ident_char((unsigned char)z[n])) n++;
    lx->kind = T_IDENT;
    lx->text = sqlite3_mprintf("%.*s", n, z);
  } else {
    lx->kind = T_OTHER;
    n = 1;
  }
  if ((lx->kind == T_IDENT || lx->kind == T_STRING) && !lx->text) {
    /* Never a token without its text: it would parse as something else. */
    lx->oom = 1;
    lx->kind = T_OTHER;
  }
  lx->z = z + n;
  return lx->kind;
}

static int kw(const lexer *lx, const char *word) {
  return lx->kind == T_IDENT && lx->text && mp_stricmp(lx->text, word) == 0;
}

static const char *const type_names[] = {NULL, "INTEGER", "REAL", "TEXT",
                                         "BLOB", "BOOLEAN"};

const char *mp_type_name(int type) {
  return type >= MP_INTEGER && type <= MP_BOOLEAN ? type_names[type] : "?";
}

static int type_code(const char *name) {
  for (int t = MP_INTEGER; t <= MP_BOOLEAN; t++)
    if (mp_stricmp(name, type_names[t]) == 0) return t;
  return 0;
}

static const char *const reserved[] = {"packed", "mask", "mode", "unpack",
                                       "batch", NULL};

int mp_model_field(const mp_model *m, const char *name) {
  for (int i = 0; i < m->nfield; i++)
    if (mp_stricmp(m->fields[i].name, name) == 0) return i;
  return -1;
}

void mp_model_unref(mp_model *m) {
  if (!m || --m->refs > 0) return;
  mp_stored_close(m);
  for (int i = 0; i < m->nfield; i++) {
    sqlite3_free(m->fields[i].name);
    sqlite3_free(m->fields[i].column);
  }
  sqlite3_free(m->fields);
  sqlite3_free(m->names);
  sqlite3_free(m->types);
  sqlite3_free(m->name);
  sqlite3_free(m->source_schema);
  sqlite3_free(m->source);
  sqlite3_free(m->source_sql);
  sqlite3_free(m->shadow_sql);
  sqlite3_free(m);
}

#define FAIL(...)                                              \
  do {                                                         \
    *err = sqlite3_mprintf("modelpack: %s: " __VA_ARGS__);     \
    return SQLITE_ERROR;                                       \
  } while (0)

/* Parse `name TYPE [NOT NULL] [PRIMARY KEY] [HOOKED] [COLUMN c]`. */
static int parse_field(mp_model *m, lexer *lx, char **err) {
  mp_field *f = &m->fields[m->nfield];
  memset(f, 0, sizeof *f);
  f->name = lx->text;
  lx->text = NULL;
  m->nfield++;
  for (int i = 0; reserved[i]; i++)
    if (mp_stricmp(f->name, reserved[i]) == 0)
      FAIL("field name %s is reserved for a hidden column", m->name, f->name);
  if (mp_model_field(m, f->name) != m->nfield - 1)
    FAIL("duplicate field %s", m->name, f->name);
  if (lex_next(lx) != T_IDENT) FAIL("field %s has no type", m->name, f->name);
  f->type = (unsigned char)type_code(lx->text);
  if (!f->type)
    FAIL("unknown type '%s' for field %s (use INTEGER, REAL, TEXT, BLOB or BOOLEAN)",
         m->name, lx->text, f->name);
  while (lex_next(lx) != T_END) {
    if (kw(lx, "NOT") && (lex_next(lx), kw(lx, "NULL"))) {
      f->notnull = 1;
    } else if (kw(lx, "PRIMARY") && (lex_next(lx), kw(lx, "KEY"))) {
      if (m->pk >= 0)
        FAIL("two PRIMARY KEY fields (%s and %s)", m->name,
             m->fields[m->pk].name, f->name);
      m->pk = m->nfield - 1;
    } else if (kw(lx, "HOOKED")) {
      f->hooked = 1;
    } else if (kw(lx, "COLUMN")) {
      if (lex_next(lx) != T_IDENT || f->column)
        FAIL("field %s: COLUMN needs one source column name", m->name, f->name);
      f->column = lx->text;
      lx->text = NULL;
    } else {
      FAIL("field %s: unknown option near '%s'", m->name, f->name,
           lx->text ? lx->text : lx->z - 1);
    }
  }
  if (!f->column) f->column = mp_strdup(f->name);
  return f->column ? SQLITE_OK : SQLITE_NOMEM;
}

/* `schema.name`, `name`, either possibly quoted; from an option value. */
static int parse_source(mp_model *m, const char *value, char **err) {
  lexer lx = {value, 0, NULL, 0};
  if (lex_next(&lx) != T_IDENT) goto bad;
  char *first = lx.text;
  lx.text = NULL;
  if (lex_next(&lx) == T_DOT) {
    if (lex_next(&lx) != T_IDENT) { sqlite3_free(first); goto bad; }
    m->source_schema = first;
    m->source = lx.text;
    lx.text = NULL;
    lex_next(&lx);
  } else {
    m->source = first;
  }
  if (lx.kind != T_END) goto bad;
  return SQLITE_OK;
bad:
  sqlite3_free(lx.text);
  if (lx.oom) return SQLITE_NOMEM;
  FAIL("source = '%s' is not a table or view name", m->name, value);
}

/* The value of `key = value`: one string literal, or the raw bare text. */
static char *option_value(lexer *lx) {
  const char *rest = lx->z;
  while (*rest == ' ' || *rest == '\t' || *rest == '\n') rest++;
  if (lex_next(lx) == T_STRING) {
    char *v = lx->text;
    lx->text = NULL;
    if (lex_next(lx) == T_END) return v;
    sqlite3_free(v);
    return NULL;
  }
  char *v = *rest ? mp_strdup(rest) : NULL;
  if (*rest && !v) lx->oom = 1;
  return v;
}

static int parse_option(mp_model *m, lexer *lx, char **hooks, char **err) {
  char *key = lx->text, *value;
  int rc = SQLITE_OK;
  lx->text = NULL;
  lex_next(lx); /* the '=' */
  value = option_value(lx);
  if (!value) {
    *err = sqlite3_mprintf("modelpack: %s: option %s needs one value",
                           m->name, key);
    rc = SQLITE_ERROR;
  } else if (mp_stricmp(key, "source") == 0) {
    if (m->source) {
      *err = sqlite3_mprintf("modelpack: %s: source given twice", m->name);
      rc = SQLITE_ERROR;
    } else {
      rc = parse_source(m, value, err);
    }
  } else if (mp_stricmp(key, "materialize") == 0) {
    if (mp_stricmp(value, "stored") == 0 || mp_stricmp(value, "none") == 0) {
      m->stored = mp_stricmp(value, "stored") == 0;
    } else {
      *err = sqlite3_mprintf("modelpack: %s: materialize must be 'stored' or 'none', not '%s'",
                             m->name, value);
      rc = SQLITE_ERROR;
    }
  } else if (mp_stricmp(key, "hooks") == 0) {
    sqlite3_free(*hooks);
    *hooks = value;
    value = NULL;
  } else {
    *err = sqlite3_mprintf(
        "modelpack: %s: unknown option %s (known: source, hooks, materialize)", m->name,
        key);
    rc = SQLITE_ERROR;
  }
  sqlite3_free(key);
  sqlite3_free(value);
  return rc;
}

static int parse_item(mp_model *m, const char *item, char **hooks,
                      char **err) {
  lexer lx = {item, 0, NULL, 0};
  int rc;
  if (lex_next(&lx) != T_IDENT) {
    *err = sqlite3_mprintf("modelpack: %s: cannot parse '%s'", m->name, item);
    rc = SQLITE_ERROR;
  } else {
    lexer peek = {lx.z, 0, NULL, 0};
    int is_option = lex_next(&peek) == T_EQ;
    sqlite3_free(peek.text);
    lx.oom |= peek.oom;
    if (is_option) {
      rc = parse_option(m, &lx, hooks, err);
    } else if (m->nfield + m->overflow >= MP_MAX_FIELDS) {
      m->overflow++; /* counted, so the error can say how many there are */
      rc = SQLITE_OK;
    } else {
      rc = parse_field(m, &lx, err);
    }
  }
  sqlite3_free(lx.text);
  if (lx.oom && rc != SQLITE_NOMEM) {
    /* Whatever the parse concluded, it concluded it from a lost token. */
    sqlite3_free(*err);
    *err = NULL;
    rc = SQLITE_NOMEM;
  }
  return rc;
}

mp_model *mp_model_new(char *name, int nfield_max) {
  mp_model *m = name ? sqlite3_malloc(sizeof *m) : NULL;
  if (!m) {
    sqlite3_free(name);
    return NULL;
  }
  memset(m, 0, sizeof *m);
  m->refs = 1;
  m->pk = -1;
  m->name = name;
  m->fields = sqlite3_malloc64(sizeof(mp_field) * (size_t)nfield_max);
  if (!m->fields) {
    mp_model_unref(m);
    return NULL;
  }
  return m;
}

int mp_model_finish(mp_model *m) {
  m->names = sqlite3_malloc64(sizeof(char *) * (size_t)m->nfield);
  m->types = sqlite3_malloc64((size_t)m->nfield);
  if (!m->names || !m->types) return SQLITE_NOMEM;
  for (int i = 0; i < m->nfield; i++) {
    m->names[i] = m->fields[i].name;
    m->types[i] = m->fields[i].type;
    if (m->fields[i].hooked) m->setattr |= (uint64_t)1 << i;
  }
  return SQLITE_OK;
}

static int finish_model(mp_model *m, const char *hooks, char **err) {
  if (m->overflow)
    FAIL("too many fields (%d, at most %d)", m->name, m->nfield + m->overflow, MP_MAX_FIELDS);
  if (m->nfield == 0) FAIL("no fields declared", m->name);
  if (m->pk < 0) FAIL("no PRIMARY KEY field", m->name);
  if (!m->source) FAIL("missing source = option (the table or view to read)", m->name);
  if (mp_model_finish(m) != SQLITE_OK) return SQLITE_NOMEM;
  m->source_sql = m->source_schema
                      ? sqlite3_mprintf("\"%w\".\"%w\"", m->source_schema, m->source)
                      : sqlite3_mprintf("\"%w\"", m->source);
  if (!m->source_sql) return SQLITE_NOMEM;
  if (hooks) {
    uint64_t fields = 0;
    int rc = mp_hooks_parse(m, hooks, &m->hooks, &fields, err);
    if (rc != SQLITE_OK) return rc;
    m->setattr |= fields;
  }
  return SQLITE_OK;
}

int mp_decl_parse(const char *name, int argc, const char *const *argv,
                  mp_model **out, char **err) {
  mp_model *m = mp_model_new(mp_strdup(name), MP_MAX_FIELDS);
  char *hooks = NULL;
  int rc = SQLITE_OK;
  *out = NULL;
  if (!m) return SQLITE_NOMEM;
  for (int i = 3; i < argc && rc == SQLITE_OK; i++) rc = parse_item(m, argv[i], &hooks, err);
  if (rc == SQLITE_OK) rc = finish_model(m, hooks, err);
  sqlite3_free(hooks);
  if (rc != SQLITE_OK) {
    mp_model_unref(m);
    return rc;
  }
  *out = m;
  return SQLITE_OK;
}

char *mp_decl_schema_sql(const mp_model *m) {
  mp_str s = {0};
  mp_str_cat(&s, "CREATE TABLE x(");
  for (int i = 0; i < m->nfield; i++)
    mp_str_printf(&s, "\"%w\" %s, ", m->fields[i].name,
                  mp_type_name(m->fields[i].type));
  mp_str_cat(&s,
             "packed BLOB HIDDEN, mask INTEGER HIDDEN, mode TEXT HIDDEN, "
             "unpack BLOB HIDDEN, batch INTEGER HIDDEN)");
  return mp_str_finish(&s);
}
