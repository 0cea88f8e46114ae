// pop3fetch: fetches mail from many POP3 maildrops at once. See --help.

#include "fetch/fetcher.hpp"

#include <iostream>

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    try {
        return pop3fetch::main_entry(args, std::cout, std::cerr);
    } catch (const std::exception& e) {
        std::cerr << "pop3fetch: " << e.what() << "\n";
        return 1;
    }
}
