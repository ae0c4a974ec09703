/* A shared object that is not a plugin: no uffdkit_plugin_entry. */
__attribute__((visibility("default"))) int plain_answer(void);
int plain_answer(void) {
  return 42;
}
