#define BOOST_TEST_MODULE o365relay_unit_tests
#include <boost/test/unit_test.hpp>
