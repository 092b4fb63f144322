/*
 * Test-only: reboots a test guest into another kernel without leaving the QEMU process, the way a
 * guest's own kernel update does (kexec_file_load(2), then reboot(LINUX_REBOOT_CMD_KEXEC)).
 * Usage: hs-kexec <bzImage> <initrd> <command line>
 */
#include <fcntl.h>
#include <linux/reboot.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s <bzImage> <initrd> <command line>\n", argv[0]);
    return 2;
  }
  int kernel = open(argv[1], O_RDONLY);
  int initrd = open(argv[2], O_RDONLY);
  if (kernel < 0 || initrd < 0) {
    perror("open");
    return 1;
  }
  if (syscall(SYS_kexec_file_load, kernel, initrd, strlen(argv[3]) + 1, argv[3], 0UL) != 0) {
    perror("kexec_file_load");
    return 1;
  }
  sync();
  syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_KEXEC, NULL);
  perror("reboot(LINUX_REBOOT_CMD_KEXEC)");
  return 1;
}
