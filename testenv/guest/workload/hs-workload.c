/*
 * Test-only guest workload for the detailed process view: three extra threads, an open regular
 * file, a pipe and a TCP socket listening on 127.0.0.1:<port>, then it waits for signals.
 * Usage: hs-workload <port>
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static void *idle_thread(void *arg) {
  (void)arg;
  for (;;) pause();
  return NULL;
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 8080;
  if (open("/etc/passwd", O_RDONLY) < 0) { perror("open"); return 1; }
  int fds[2];
  if (pipe(fds) != 0) { perror("pipe"); return 1; }
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr = { htonl(INADDR_LOOPBACK) } };
  if (s < 0 || bind(s, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(s, 8) != 0) { perror("socket"); return 1; }
  for (int i = 0; i < 3; i++) {
    pthread_t t;
    if (pthread_create(&t, NULL, idle_thread, NULL) != 0) { perror("pthread_create"); return 1; }
  }
  printf("hs-workload ready\n");
  fflush(stdout);
  for (;;) pause();
}
