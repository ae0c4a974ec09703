# Man pages of the daemon.  Included from core/CMakeLists.txt.
install(FILES ${CMAKE_CURRENT_LIST_DIR}/uffdkit.8
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/uffdkit.conf.5
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
