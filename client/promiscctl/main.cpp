// promiscctl: the administrator's command-line client of promiscd.
#include "cli.hpp"

int main(int argc, char** argv) {
    return promiscd::ctl::main(argc, argv);
}
