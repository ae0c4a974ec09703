/* The worker process: loads plugins and runs every session's fault loop.
 * Started by the supervisor as `uffdkit --worker ...`. */
#ifndef UFFDKIT_CORE_WORKER_H
#define UFFDKIT_CORE_WORKER_H

int worker_main(int argc, char **argv);

#endif
