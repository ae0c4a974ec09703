# uffdkit_add_plugin(NAME SOURCES src... [LIBS lib...] [MAN page...])
# Builds lib<NAME>.so exporting only the entry symbol, into the plugin
# directory of the build tree (mirroring the install tree), and installs it.
function(uffdkit_add_plugin name)
  cmake_parse_arguments(P "" "" "SOURCES;LIBS;MAN" ${ARGN})
  add_library(plugin-${name} MODULE ${P_SOURCES})
  set_target_properties(plugin-${name} PROPERTIES
    OUTPUT_NAME ${name}
    PREFIX lib
    C_VISIBILITY_PRESET hidden
    LIBRARY_OUTPUT_DIRECTORY ${UFFDKIT_PLUGIN_OUTPUT_DIR})
  target_include_directories(plugin-${name} PRIVATE
    ${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/common)
  target_link_options(plugin-${name} PRIVATE
    -Wl,--version-script=${CMAKE_SOURCE_DIR}/cmake/plugin.syms -Wl,-z,defs)
  target_link_libraries(plugin-${name} PRIVATE ${P_LIBS})
  install(TARGETS plugin-${name} LIBRARY DESTINATION ${UFFDKIT_PLUGIN_SUBDIR})
  foreach(page ${P_MAN})
    string(REGEX MATCH "[0-9]$" section ${page})
    install(FILES ${page} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endforeach()
endfunction()
