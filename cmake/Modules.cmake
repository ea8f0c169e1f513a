# The modules of libvulcan and the layers between them (docs/architecture.md).
#
# vk_module(NAME [HEADERS h...] [DEPS module...] [LIBS target...]) builds src/NAME/*.c
# into the static library vk_NAME. Its public headers (include/vulcan/<h>.h, default
# NAME.h) are linked into build/include/NAME/vulcan/, the only include directory the
# module exports: a target sees a module's public header only when it links that module,
# directly or through DEPS. So a module that includes the header of a module it may not
# use (a higher one) fails to compile with "vulcan/<h>.h: No such file or directory".
# Private headers (src/NAME/*_int.h) are seen by the module itself only.
# tests/build/check_layers.cmake proves it for every pair of modules (CTest build_layers).

set(VK_MODULES "" CACHE INTERNAL "")

function(vk_module name)
    cmake_parse_arguments(M "" "" "HEADERS;DEPS;LIBS" ${ARGN})
    if(NOT M_HEADERS)
        set(M_HEADERS ${name})
    endif()
    file(GLOB _srcs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/${name}/*.c)
    add_library(vk_${name} STATIC ${_srcs})
    set(_inc ${PROJECT_BINARY_DIR}/include/${name})
    file(MAKE_DIRECTORY ${_inc}/vulcan)
    foreach(h IN LISTS M_HEADERS)
        file(CREATE_LINK ${PROJECT_SOURCE_DIR}/include/vulcan/${h}.h ${_inc}/vulcan/${h}.h
             SYMBOLIC)
    endforeach()
    target_include_directories(vk_${name} PUBLIC ${_inc} PRIVATE ${PROJECT_SOURCE_DIR}/src/${name})
    set(_deps "")
    foreach(d IN LISTS M_DEPS)
        list(APPEND _deps vk_${d})
    endforeach()
    set(_libs "")
    foreach(l IN LISTS M_LIBS)
        list(APPEND _libs PkgConfig::${l})
    endforeach()
    target_link_libraries(vk_${name} PUBLIC ${_deps} ${_libs} Threads::Threads m)
    target_compile_definitions(vk_${name} PUBLIC _GNU_SOURCE VK_VERSION="${PROJECT_VERSION}")
    set(VK_MODULES ${VK_MODULES} ${name} CACHE INTERNAL "")
    set_property(GLOBAL PROPERTY VK_MODULE_DEPS_${name} "${M_DEPS}")
    set_property(GLOBAL PROPERTY VK_MODULE_HEADERS_${name} "${M_HEADERS}")
endfunction()

# Lower modules first; a module may use only the ones listed in its DEPS (and theirs).
vk_module(util HEADERS util mask LIBS CRYPTO)
vk_module(kdl DEPS util)
vk_module(cron DEPS util)
vk_module(auth HEADERS auth auth_oidc auth_saml DEPS util LIBS CRYPTO ARGON2 JANSSON XMLSEC ZLIB)
vk_module(workflow DEPS kdl cron util LIBS CURL)
vk_module(store HEADERS store store_identity store_secrets store_audit DEPS auth util LIBS SQLITE PQ)
vk_module(telemetry DEPS util LIBS JANSSON CURL CRYPTO)
vk_module(http DEPS util LIBS MHD GNUTLS CURL JANSSON)
vk_module(orchestrator DEPS store workflow telemetry util LIBS JANSSON)
vk_module(git DEPS util LIBS CRYPTO)
vk_module(secrets HEADERS secret_provider secrets DEPS util LIBS JANSSON CRYPTO)
vk_module(triggers DEPS orchestrator store workflow cron git http telemetry util LIBS JANSSON CRYPTO)
vk_module(worker HEADERS worker executor DEPS auth http git telemetry util LIBS CURL JANSSON)
vk_module(audit DEPS store util LIBS JANSSON CRYPTO)
vk_module(api DEPS orchestrator triggers secrets audit store workflow http telemetry util LIBS JANSSON)

# Everything, for the executable, the tests and the benchmarks.
add_library(vulcan INTERFACE)
foreach(m IN LISTS VK_MODULES)
    target_link_libraries(vulcan INTERFACE vk_${m})
endforeach()

# The graph, for tests/build/check_layers.cmake.
set(_layers "set(VK_LAYER_MODULES ${VK_MODULES})\n")
foreach(m IN LISTS VK_MODULES)
    get_property(_d GLOBAL PROPERTY VK_MODULE_DEPS_${m})
    get_property(_h GLOBAL PROPERTY VK_MODULE_HEADERS_${m})
    string(APPEND _layers "set(VK_LAYER_DEPS_${m} ${_d})\nset(VK_LAYER_HEADERS_${m} ${_h})\n")
endforeach()
file(WRITE ${PROJECT_BINARY_DIR}/layers.cmake "${_layers}")
