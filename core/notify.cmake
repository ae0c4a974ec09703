# The service manager notification protocol, part of the daemon's library.
target_sources(uffdkit-core PRIVATE ${CMAKE_CURRENT_LIST_DIR}/notify.c)
