# The control socket, the metrics endpoint and the `uffdkit ctl` client.
# Included from core/CMakeLists.txt after uffdkit-core is defined.
target_sources(uffdkit-core PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/control.c
  ${CMAKE_CURRENT_LIST_DIR}/metrics.c
  ${CMAKE_CURRENT_LIST_DIR}/ctl.c)
set_property(GLOBAL PROPERTY UFFDKIT_CONTROL ON)

# libmicrohttpd serves GET /metrics when the `metrics` setting is given.
# Without it the daemon still builds; a `metrics` setting is then refused
# at start with a message saying so (`uffdkit ctl metrics` still works).
pkg_check_modules(MHD IMPORTED_TARGET libmicrohttpd)
if(MHD_FOUND)
  target_link_libraries(uffdkit-core PUBLIC PkgConfig::MHD)
  target_compile_definitions(uffdkit-core PRIVATE UFFDKIT_HAVE_MHD=1)
  set_property(GLOBAL PROPERTY UFFDKIT_HAVE_MHD ON)
else()
  message(WARNING "libmicrohttpd not found (Debian: libmicrohttpd-dev): "
    "the HTTP metrics endpoint is not built")
  set_property(GLOBAL PROPERTY UFFDKIT_HAVE_MHD OFF)
endif()

install(FILES ${CMAKE_CURRENT_LIST_DIR}/uffdkit-ctl.8
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
