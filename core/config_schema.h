/* Internal to the configuration loader: the libcyaml schema of the YAML file, the single source
 * of truth for which keys exist, their types and which are required (config_schema.c). */
#ifndef CV_CORE_CONFIG_SCHEMA_H
#define CV_CORE_CONFIG_SCHEMA_H

#include "core/config.h"

#include <cyaml/cyaml.h>

extern const cyaml_schema_value_t cfg__top_schema;
extern const cyaml_schema_field_t cfg__top_fields[];
extern const cyaml_schema_field_t cfg__job_fields[], cfg__probe_fields[], cfg__notify_fields[];
extern const cyaml_schema_field_t cfg__token_fields[], cfg__storage_fields[], cfg__ping_fields[];
extern const cyaml_schema_value_t cfg__job_entry, cfg__probe_entry, cfg__notify_entry,
    cfg__token_entry;

#endif
