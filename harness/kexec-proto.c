/*
 * kexec-proto: the kexec step of issue 23 (pivot.kexec) as a throw-away C
 * prototype, so the harness and the QEMU tests can prove kexec end to end
 * before pivot-init does it itself. Not part of the product.
 *
 *   kexec-proto [-nRz] [-s LEN] [-u DIR]... KERNEL INITRD|- CMDLINE
 *
 * It opens KERNEL and INITRD ("-": none, KEXEC_FILE_NO_INITRAMFS), calls
 * kexec_file_load(kernel_fd, initrd_fd, strlen(CMDLINE) + 1, CMDLINE, flags)
 * (the length counts the terminating NUL: the kernel wants the last byte of
 * the buffer to be NUL) and prints one line:
 *
 *   KEXEC load result=0 ms=412
 *   KEXEC load result=ENOEXEC(8) ms=35
 *
 * Then, unless -n is given, it unmounts each -u DIR (in order; a failure is
 * printed, not fatal), syncs, notes the moment in /dev/kmsg (so the console
 * shows a timestamped "kexec-proto: reboot(KEXEC)" line) and calls
 * reboot(LINUX_REBOOT_CMD_KEXEC), which does not return when it works.
 *
 *   -n      load only: print the result, unload again (KEXEC_FILE_UNLOAD),
 *           exit 0 if the load worked, 1 if not (errno experiments)
 *   -s LEN  pad CMDLINE with a trailing word of 'x' so that it is exactly
 *           LEN bytes long without its NUL (command-line limit experiments)
 *   -u DIR  unmount DIR after a successful load, before the reboot
 *   -z      pass the length without the NUL (the kernel's EINVAL)
 *   -R      no load: call reboot(LINUX_REBOOT_CMD_KEXEC) at once (what it
 *           does when nothing is loaded); KERNEL etc. are still required
 *
 * Exit status 1 when the load fails, 2 on usage errors, 3 when reboot
 * returns. Built with `cc -O2 -static` (x86_64 and, with a cross compiler,
 * arm64: the syscall number comes from the C library's headers).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kexec.h>
#include <linux/reboot.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *errname(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case E2BIG: return "E2BIG";
	case ENOEXEC: return "ENOEXEC";
	case EBADF: return "EBADF";
	case ENOMEM: return "ENOMEM";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EISDIR: return "EISDIR";
	case EINVAL: return "EINVAL";
	case ETXTBSY: return "ETXTBSY";
	case EFBIG: return "EFBIG";
	case ENOSYS: return "ENOSYS";
	case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
	case EKEYREJECTED: return "EKEYREJECTED";
	case EBADMSG: return "EBADMSG";
	case ENOKEY: return "ENOKEY";
	default: return "E?";
	}
}

static double uptime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double started;

/* One result line: what, 0 or the errno's name, ms since the call began. */
static void say(const char *what, long rc, int err)
{
	long ms = (long)((uptime() - started) * 1000 + 0.5);

	if (rc == 0)
		printf("KEXEC %s result=0 ms=%ld\n", what, ms);
	else
		printf("KEXEC %s result=%s(%d) ms=%ld\n", what, errname(err), err, ms);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	int load_only = 0, no_nul = 0, reboot_only = 0, opt, kfd, ifd = -1, i;
	long pad = -1, rc;
	unsigned long flags = 0;
	const char *umounts[8];
	int n_umounts = 0;
	char *cmdline;

	while ((opt = getopt(argc, argv, "nRs:u:z")) != -1) {
		switch (opt) {
		case 'n': load_only = 1; break;
		case 'z': no_nul = 1; break;
		case 'R': reboot_only = 1; break;
		case 's': pad = strtol(optarg, NULL, 10); break;
		case 'u':
			if (n_umounts < 8)
				umounts[n_umounts++] = optarg;
			break;
		default: goto usage;
		}
	}
	if (argc - optind != 3)
		goto usage;

	cmdline = argv[optind + 2];
	if (pad >= 0) {
		size_t have = strlen(cmdline);
		char *p = malloc(pad + 1);

		if (!p || (size_t)pad < have + 2)
			goto usage;
		memcpy(p, cmdline, have);
		p[have] = ' ';
		memset(p + have + 1, 'x', pad - have - 1);
		p[pad] = '\0';
		cmdline = p;
	}

	if (reboot_only)
		goto reboot;

	started = uptime();
	kfd = open(argv[optind], O_RDONLY | O_CLOEXEC);
	if (kfd < 0) {
		say("open-kernel", -1, errno);
		return 1;
	}
	if (strcmp(argv[optind + 1], "-") == 0) {
		flags |= KEXEC_FILE_NO_INITRAMFS;
	} else {
		ifd = open(argv[optind + 1], O_RDONLY | O_CLOEXEC);
		if (ifd < 0) {
			say("open-initrd", -1, errno);
			return 1;
		}
	}

	rc = syscall(SYS_kexec_file_load, kfd, ifd, strlen(cmdline) + !no_nul, cmdline, flags);
	say("load", rc, errno);
	if (rc != 0)
		return 1;
	close(kfd);
	if (ifd >= 0)
		close(ifd);

	if (load_only) {
		rc = syscall(SYS_kexec_file_load, -1, -1, 0UL, NULL, (unsigned long)KEXEC_FILE_UNLOAD);
		say("unload", rc, errno);
		return 0;
	}

	for (i = 0; i < n_umounts; i++) {
		char what[300];

		started = uptime();
		rc = umount2(umounts[i], 0);
		snprintf(what, sizeof what, "umount %s", umounts[i]);
		say(what, rc, errno);
	}
	sync();

reboot:
	{
		static const char note[] = "<5>kexec-proto: reboot(KEXEC)\n";
		int kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);

		printf("KEXEC reboot uptime=%.3f\n", uptime());
		fflush(stdout);
		if (kmsg >= 0) {
			if (write(kmsg, note, sizeof note - 1) < 0)
				say("kmsg", -1, errno);
			close(kmsg);
		} else {
			say("kmsg", -1, errno);
		}
	}
	started = uptime();
	rc = syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
		     LINUX_REBOOT_CMD_KEXEC, NULL);
	say("reboot", rc, errno);
	return 3;

usage:
	fputs("usage: kexec-proto [-nRz] [-s LEN] [-u DIR]... KERNEL INITRD|- CMDLINE\n", stderr);
	return 2;
}
