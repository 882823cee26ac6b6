/*
 * scripts/bench's "floor": the least an initramfs /init can do to reach the
 * volume's init, as a lower bound for the peers table (not a product: no
 * checks, no fallback, no module loading, no identity, one log line).
 *
 * It mounts devtmpfs on /dev, listens for kernel uevents, and tries to mount
 * /dev/nvme0n1 (ext4, read-write) at once and again after each uevent; then
 * it moves /dev under the volume, moves the volume onto /, chroots and execs
 * /sbin/init. The initramfs is not freed.
 *
 * x86-64 only (raw syscall numbers), built by the bench with
 * `cc -O2 -static -nostdlib`: no C library, so the binary is a few KiB and
 * its start-up is only the kernel's exec.
 */

typedef unsigned long ulong;

static long sys6(long nr, long a, long b, long c, long d, long e)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
}

#define SYS_write 1
#define SYS_open 2
#define SYS_pause 34
#define SYS_dup2 33
#define SYS_socket 41
#define SYS_recvfrom 45
#define SYS_bind 49
#define SYS_execve 59
#define SYS_chdir 80
#define SYS_chroot 161
#define SYS_mount 165

#define O_WRONLY 1
#define AF_NETLINK 16
#define SOCK_DGRAM 2
#define NETLINK_KOBJECT_UEVENT 15
#define MS_MOVE 0x2000

struct sockaddr_nl {
	unsigned short family;
	unsigned short pad;
	unsigned int pid;
	unsigned int groups;
};

static long say(long fd, const char *s)
{
	ulong n = 0;
	while (s[n])
		n++;
	return sys6(SYS_write, fd, (long)s, (long)n, 0, 0);
}

static char buf[8192];

void _start(void)
{
	sys6(SYS_mount, (long)"devtmpfs", (long)"/dev", (long)"devtmpfs", 0, 0);
	long kmsg = sys6(SYS_open, (long)"/dev/kmsg", O_WRONLY, 0, 0, 0);
	say(kmsg, "bench-floor: waiting for /dev/nvme0n1\n");
	long sock = sys6(SYS_socket, AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT, 0, 0);
	struct sockaddr_nl addr = { AF_NETLINK, 0, 0, 1 };
	sys6(SYS_bind, sock, (long)&addr, sizeof addr, 0, 0);
	/* Subscribed before the first try: a disk that comes later sends a uevent. */
	while (sys6(SYS_mount, (long)"/dev/nvme0n1", (long)"/new-root", (long)"ext4", 0, 0) != 0) {
		if (sys6(SYS_recvfrom, sock, (long)buf, sizeof buf, 0, 0) < 0) {
			say(kmsg, "bench-floor: uevent socket failed\n");
			for (;;)
				sys6(SYS_pause, 0, 0, 0, 0, 0);
		}
	}
	sys6(SYS_chdir, (long)"/new-root", 0, 0, 0, 0);
	sys6(SYS_mount, (long)"/dev", (long)"/new-root/dev", 0, MS_MOVE, 0);
	sys6(SYS_mount, (long)".", (long)"/", 0, MS_MOVE, 0);
	sys6(SYS_chroot, (long)".", 0, 0, 0, 0);
	sys6(SYS_chdir, (long)"/", 0, 0, 0, 0);
	sys6(SYS_dup2, kmsg, 1, 0, 0, 0);
	sys6(SYS_dup2, kmsg, 2, 0, 0, 0);
	char *argv[] = { "/sbin/init", 0 };
	char *envp[] = { 0 };
	sys6(SYS_execve, (long)"/sbin/init", (long)argv, (long)envp, 0, 0);
	say(kmsg, "bench-floor: exec /sbin/init failed\n");
	for (;;)
		sys6(SYS_pause, 0, 0, 0, 0, 0);
}
