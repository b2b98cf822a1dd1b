# The dashboard: http/ui/ is built with Vite (npm) into the build directory, and every file of
# the result is embedded by the ui_embed generator (http/ui/embed.c) into ui_assets.c, which
# joins cvlib. Nothing generated lands in the source tree except http/ui/node_modules/ and
# http/ui/src/gen/api.d.ts (git-ignored): the TypeScript types of the API and its WebSocket events,
# generated from proto/openapi.yaml by openapi-typescript at each build (npm run build), so a
# renamed field breaks the dashboard's build.
option(CV_UI "Build the dashboard with npm and embed it (OFF: a placeholder page)" ON)

set(CV_UI_DIR ${CMAKE_SOURCE_DIR}/http/ui)
set(CV_UI_DIST ${CMAKE_BINARY_DIR}/ui-dist)
set(CV_UI_C ${CMAKE_BINARY_DIR}/ui_assets.c)

# The generator is a host tool: built without the sanitizer/fuzzer flags of the rest.
add_executable(ui_embed ${CV_UI_DIR}/embed.c)
target_link_libraries(ui_embed PRIVATE PkgConfig::ZLIB)
target_compile_options(ui_embed PRIVATE -fno-sanitize=all)
target_link_options(ui_embed PRIVATE -fno-sanitize=all)

if(CV_UI)
  find_program(NPM npm REQUIRED)
  find_program(NODE node REQUIRED)
  file(GLOB_RECURSE CV_UI_SOURCES CONFIGURE_DEPENDS
    ${CV_UI_DIR}/src/* ${CV_UI_DIR}/public/*)
  list(FILTER CV_UI_SOURCES EXCLUDE REGEX "/src/gen/")
  list(APPEND CV_UI_SOURCES ${CV_UI_DIR}/index.html ${CV_UI_DIR}/vite.config.ts
    ${CV_UI_DIR}/tsconfig.json ${CV_UI_DIR}/package.json ${CMAKE_SOURCE_DIR}/proto/openapi.yaml)
  # npm ci only when the lock file changed since the last install (npm writes
  # node_modules/.package-lock.json on every install).
  add_custom_command(
    OUTPUT ${CV_UI_DIR}/node_modules/.package-lock.json
    COMMAND sh ${CMAKE_SOURCE_DIR}/scripts/npm-install.sh
    DEPENDS ${CV_UI_DIR}/package-lock.json ${CV_UI_DIR}/package.json
    WORKING_DIRECTORY ${CV_UI_DIR}
    COMMENT "npm ci (dashboard dependencies)"
    VERBATIM)
  add_custom_command(
    OUTPUT ${CV_UI_C}
    COMMAND ${NPM} run --silent build -- --outDir ${CV_UI_DIST} --emptyOutDir --logLevel warn
    COMMAND ui_embed ${CV_UI_DIST} ${CV_UI_C}
    DEPENDS ${CV_UI_SOURCES} ${CV_UI_DIR}/node_modules/.package-lock.json ui_embed
    WORKING_DIRECTORY ${CV_UI_DIR}
    COMMENT "Building the dashboard (vite) and embedding it"
    VERBATIM)
else()
  add_custom_command(
    OUTPUT ${CV_UI_C}
    COMMAND ui_embed - ${CV_UI_C}
    DEPENDS ui_embed
    COMMENT "Embedding the dashboard placeholder (CV_UI=OFF)"
    VERBATIM)
endif()

# The generated file's rule lives in this directory; cvlib (top level) depends on this target.
add_custom_target(cv_ui DEPENDS ${CV_UI_C})
