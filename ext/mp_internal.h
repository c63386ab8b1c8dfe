/*
 * mp_internal.h -- types shared by the extension's source files.
 *
 * A model (mp_model) is the parsed form of one CREATE VIRTUAL TABLE ...
 * USING modelpack(...) declaration.  Models live in a per-connection registry
 * (registry.c) so SQL functions can find them by name; the model virtual
 * table (vtab.c) and every function share one packer (pack.c) that writes
 * the layout defined in include/modelpack.h.
 */
#ifndef MP_INTERNAL_H
#define MP_INTERNAL_H

#include <sqlite3ext.h>
#include <stdint.h>

#include "../include/modelpack.h"

/* The API table lives in modelpack.c; every other file refers to it. */
SQLITE_EXTENSION_INIT3

/* Oldest SQLite this extension runs on (LIMIT/OFFSET constraints, 3.38). */
#define MP_MIN_SQLITE 3038000
#define MP_VERSION "1.0.0"

/* Model-level hook flags (mirroring what makes Django's from_db unsafe). */
#define MP_HOOK_PRE_INIT 0x1
#define MP_HOOK_POST_INIT 0x2
#define MP_HOOK_CUSTOM_INIT 0x4

typedef struct mp_field {
  char *name;       /* field name (column of the model table) */
  char *column;     /* column in the source (== name unless COLUMN given) */
  unsigned char type; /* enum mp_type */
  unsigned char notnull;
  unsigned char hooked; /* declared setattr hook */
} mp_field;

typedef struct mp_model {
  int refs;            /* registry, vtab and statements hold references */
  char *name;          /* model (virtual table) name */
  char *source_schema; /* NULL: resolve like an unqualified table name */
  char *source;        /* source table or view name */
  char *source_sql;    /* quoted "schema"."name" ready to splice into SQL */
  int nfield;
  int overflow;        /* fields declared past MP_MAX_FIELDS (an error) */
  int pk;              /* index of the primary-key field */
  mp_field *fields;
  unsigned hooks;      /* declared MP_HOOK_* flags */
  uint64_t setattr;    /* declared per-field setattr hooks (bit per field) */
  int stored;          /* materialize = stored */
  sqlite3_stmt *state_stmt; /* mp_source_state's query, prepared on use */
  char *shadow_sql;    /* quoted "schema"."<name>_packed" (stored models) */
  sqlite3_stmt *store_stmt, *unstore_stmt; /* shadow writes, prepared on use */
  sqlite3_stmt *row_stmt;   /* the source row of one key (stored.c sync_row) */
  const char **names;  /* field names, for mp_fingerprint */
  unsigned char *types;
} mp_model;

/* stmtcache.c: idle prepared statements by SQL text. */
#define MP_STMT_CACHE 4
typedef struct mp_stmt_cache {
  char *sql[MP_STMT_CACHE]; /* newest first */
  sqlite3_stmt *stmt[MP_STMT_CACHE];
} mp_stmt_cache;
/* The idle statement for sql, taken out of the cache, or NULL. */
sqlite3_stmt *mp_cache_find(mp_stmt_cache *c, const char *sql);
/* An idle statement for sql, or a fresh one (error: see sqlite3_errmsg). */
int mp_cache_take(mp_stmt_cache *c, sqlite3 *db, const char *sql,
                  sqlite3_stmt **out);
/* Return a statement (reset here); takes ownership of sql. */
void mp_cache_give(mp_stmt_cache *c, char *sql, sqlite3_stmt *stmt);
void mp_cache_clear(mp_stmt_cache *c);

/* args.c: hidden-column arguments (mask, mode, batch). */
#define MP_MODE_AUTO 0
#define MP_MODE_FAST 1
#define MP_MODE_SAFE 2
void mp_arg_mask(const mp_model *m, sqlite3_value *v, uint64_t *mask, char **err);
void mp_arg_mode(const mp_model *m, sqlite3_value *v, int *mode, char **err);
void mp_arg_batch(const mp_model *m, sqlite3_value *v, uint32_t *batch, char **err);

/* decl.c: parse a declaration (argv of xCreate/xConnect). */
int mp_decl_parse(const char *name, int argc, const char *const *argv,
                  mp_model **out, char **err);
char *mp_decl_schema_sql(const mp_model *m); /* CREATE TABLE for declare_vtab */
/* A model with room for nfield_max fields (takes ownership of name). */
mp_model *mp_model_new(char *name, int nfield_max);
/* Derive the names/types arrays once the fields are filled in. */
int mp_model_finish(mp_model *m);
int mp_model_field(const mp_model *m, const char *name); /* index or -1 */
void mp_model_unref(mp_model *m);
const char *mp_type_name(int type);

/* registry.c: per-connection models and run-time hook flags. */
typedef struct mp_registry mp_registry;
typedef struct mp_entry {
  char *schema, *name;
  mp_model *model;   /* NULL while not connected */
  unsigned hooks;    /* run-time MP_HOOK_* flags set by modelpack_hooks() */
  uint64_t setattr;  /* run-time per-field setattr hooks */
} mp_entry;
mp_registry *mp_registry_new(void);
void mp_registry_free(void *reg);
int mp_registry_attach(mp_registry *r, const char *schema, mp_model *m);
void mp_registry_detach(mp_registry *r, const char *schema, mp_model *m,
                        int destroyed);
void mp_registry_rename(mp_registry *r, const char *schema, mp_model *m,
                        const char *newname);
/* The entry for schema.name if any, without connecting anything. */
mp_entry *mp_registry_get(mp_registry *r, const char *schema,
                          const char *name);
/* Find a model by 'name' or 'schema.name', connecting it if needed. */
int mp_registry_find(mp_registry *r, sqlite3 *db, const char *spec,
                     mp_entry **out, char **err);

/* hooks.c: hook flags and the fast/safe choice. */
int mp_hooks_parse(const mp_model *m, const char *spec, unsigned *hooks,
                   uint64_t *setattr, char **err);
char *mp_hooks_format(const mp_model *m, unsigned hooks, uint64_t setattr);
int mp_auto_is_safe(const mp_model *m, const mp_entry *e, uint64_t mask);

/* mask.c: deferred-field masks. */
int mp_mask_from_names(const mp_model *m, const char *list, uint64_t *mask,
                       char **err);
int mp_mask_check(const mp_model *m, sqlite3_int64 v, uint64_t *mask,
                  char **err);

/* pack.c: the one packer, used by every table and function. */
typedef struct mp_packer {
  const mp_model *m;
  uint64_t mask, varmask, fingerprint;
  uint64_t textmask; /* loaded TEXT fields */
  int nonascii;      /* some TEXT byte in this blob is >= 0x80 */
  int nloaded;
  int loaded[MP_MAX_FIELDS]; /* field index of each loaded column */
  int safe;
  uint32_t record_size;
  uint32_t capacity; /* records per blob */
  uint32_t rec_cap;  /* records the buffer has room for (<= capacity) */
  uint32_t count;    /* records packed so far */
  uint16_t flags;
  uint8_t *buf;      /* header | capacity records | heap */
  size_t buf_alloc;
  size_t heap_used;
  int failed; /* the last pack failed (its error is on the statement) */
  size_t blob_len; /* length of the last finished blob */
  int collect;      /* safe packing that notes failures and packs them fast */
  uint64_t unsafe;  /* collect: fields whose values failed safe packing */
  char *why;        /* collect: their errors, one line each, in field order */
} mp_packer;
/* The SQL function through which a source statement packs its rows, and
 * the pointer type of the packer bound as its first argument. */
#define MP_PACK_FN "modelpack_pack_row"
#define MP_PACKER_PTR "modelpack-packer"
void mp_pack_row_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv);
int mp_packer_init(mp_packer *p, const mp_model *m, uint64_t mask, int safe,
                   uint32_t capacity, int batch);
void mp_packer_reset(mp_packer *p);
void mp_packer_free(mp_packer *p);
/* Append one record from the values of the loaded fields, in order. */
int mp_pack_values(mp_packer *p, sqlite3_value **vals, char **err);
/* Append one record copied (sliced to the packer's mask) from a stored one. */
int mp_pack_slice(mp_packer *p, const mp_view *v, uint32_t rec);
/* Finish the blob; the pointer stays valid until the next reset. */
const uint8_t *mp_packer_blob(mp_packer *p, size_t *len);

/* source.c: the SELECT for one read of a model (NULL when out of memory). */
#define MP_SRC_TABLE 1    /* the source is a plain table */
#define MP_SRC_TRIGGERS 2 /* the stored model's triggers are on it */
#define MP_SRC_UNKNOWN -1 /* the schema could not be read (out of memory) */
int mp_source_state(sqlite3 *db, const char *schema, mp_model *m);
char *mp_source_sql(const mp_model *m, int how, uint64_t packed, uint64_t extra,
                    const char *clause);

/* stored.c: materialize = stored. */
int mp_stored_create(sqlite3 *db, const char *schema, mp_model *m, char **err);
void mp_stored_drop(sqlite3 *db, const char *schema, mp_model *m);
void mp_stored_close(mp_model *m); /* finalize the write statements */
int mp_stored_rebuild(sqlite3 *db, mp_model *m, sqlite3_int64 *rows, char **err);
int mp_stored_shadow_name(const char *suffix);
int mp_register_stored(sqlite3 *db, mp_registry *r);

/* reader.c: a statement's rows packed into blobs, one row or a batch each. */
enum { MP_READ_FN, MP_READ_COLS, MP_READ_STORED, MP_READ_FN_BATCH };
typedef struct mp_reader {
  sqlite3_stmt *stmt; /* owned by the caller */
  int how;            /* MP_READ_* */
  int colidx[MP_MAX_FIELDS]; /* MP_READ_COLS: column of each loaded field */
  int *depth;         /* recursion guard shared by one table, or NULL */
  mp_packer packer;
  int ready;
  int done; /* the statement has returned SQLITE_DONE */
  uint64_t stored_fp, stored_mask, stored_varmask; /* a valid stored record */
  const uint8_t *blob;              /* the last blob filled */
  size_t blob_len;
  int nkeep;                        /* columns whose first-row values are kept */
  int keepcol[MP_MAX_FIELDS];
  sqlite3_value *kept[MP_MAX_FIELDS];
  sqlite3_value *vals[MP_MAX_FIELDS];
} mp_reader;
int mp_reader_config(mp_reader *r, const mp_model *m, uint64_t mask, int safe,
                     uint32_t capacity, int batch);
void mp_reader_free(mp_reader *r);
/* SQLITE_ROW: r->blob is ready (valid until the next fill); SQLITE_DONE: no more rows;
 * otherwise an error, described by *err when it is set. */
int mp_reader_fill(mp_reader *r, char **err);

/* blob.c: open a blob given to a function, checked against a model. */
int mp_blob_open(const mp_model *m, sqlite3_value *v, mp_view *view,
                 char **err);
void mp_result_field(sqlite3_context *ctx, const mp_model *m,
                     const mp_view *view, uint32_t rec, int field);

/* functions.c, layout.c, json.c: SQL functions. */
mp_model *mp_fn_model(sqlite3_context *ctx, sqlite3_value *arg,
                      mp_entry **entry_out);
void mp_fn_error(sqlite3_context *ctx, int rc, char *err);
void mp_fn_layout(sqlite3_context *ctx, int argc, sqlite3_value **argv);
void mp_fn_json(sqlite3_context *ctx, int argc, sqlite3_value **argv);

/* vtab.c, unpack.c, functions.c: registration. */
/* Each registers its part of the extension on db; called with r == NULL it
 * removes that part again (a load that fails half-way must leave nothing
 * pointing into a library SQLite is about to unload). */
int mp_register_vtab(sqlite3 *db, mp_registry *r);

/* One SQL function to register: its flags (besides SQLITE_UTF8) and whether
 * it gets the registry as user data.  mp_create_functions registers a
 * table of them, or removes them all when r is NULL. */
typedef struct mp_fn_def {
  const char *name;
  int nargs;
  int flags;
  void (*fn)(sqlite3_context *, int, sqlite3_value **);
  int uses_registry;
} mp_fn_def;
int mp_create_functions(sqlite3 *db, const mp_fn_def *defs, size_t n, mp_registry *r);
int mp_register_unpack(sqlite3 *db, mp_registry *r);
int mp_register_query(sqlite3 *db, mp_registry *r);
int mp_register_functions(sqlite3 *db, mp_registry *r);

/* util.c */
char *mp_quote_ident(const char *s); /* "s" with doubled quotes */
char *mp_strdup(const char *s);
int mp_stricmp(const char *a, const char *b);

#endif
