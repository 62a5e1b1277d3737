// promiscctl's command line: CLI11 parses it into the commands' arguments,
// and every failure becomes one of the documented exit codes.
#pragma once

namespace promiscd::ctl {

int main(int argc, char** argv);

} // namespace promiscd::ctl
